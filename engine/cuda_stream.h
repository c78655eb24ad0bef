#pragma once
// The stream every kernel launch, copy and cuBLAS call of the engine goes on: the current
// context's (engine/context.h; CUDA builds only). One stream per context keeps the caching
// allocator simple: a block freed by the host can be reused at once, because any later use of it
// is ordered after every earlier kernel on the same stream.
#include <cuda_runtime.h>

namespace dd {
cudaStream_t cuda_stream();
}  // namespace dd

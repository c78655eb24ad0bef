#pragma once
// The current context's CUDA objects (CUDA builds only). engine/cuda_stream.h's cuda_stream() is
// the current context's stream.
#include <cublas_v2.h>

#include "engine/context.h"
#include "engine/cuda_stream.h"

namespace dd {
// The context's cuBLAS handle: bound to its stream, its math mode following its precision, with a
// workspace from the general pool (so cuBLAS allocates nothing while a graph is captured).
cublasHandle_t context_cublas(Context& ctx);
}  // namespace dd

#pragma once
// Device-side dtype casts and fills for Tensor (engine/cuda/cast.cu). Kept out of
// engine/tensor.h so the host emulation (tests/emu) can read these declarations
// under its renamed namespace (cuda_cast -> emu_cast) and test the same kernel.
#include <cstdint>

#include "engine/dtype.h"

namespace dd {
namespace cuda_cast {
// dst[i] = cast(src[i]) for n elements of device memory, on cuda_stream(); the
// element rules are those of engine/dtype.h, so the bits match cast_host.
void cast(const void* src, DType from, void* dst, DType to, int64_t n);
// Writes the element_size-byte pattern `bits` (the low bytes) n times.
void fill(void* dst, std::size_t element_size, uint64_t bits, int64_t n);
}  // namespace cuda_cast
}  // namespace dd

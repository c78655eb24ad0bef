#pragma once
// Included first by every generated <op>.emu.cpp (see rewrite.cmake): the
// emulation harness, then the engine headers the kernel files use, read before
// the renames below so that they keep their real meaning.
#include "tests/support/cuda_emulation.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/tensor.h"

// Everything the kernel file defines or includes from here on, its op header's
// `namespace cuda { ... }` declarations and the kernels/cuda/*.cuh helpers
// included, lands in dd::kernels::emu (engine/cuda/rng.cu: dd::emu_rng, engine/cuda/cast.cu:
// dd::emu_cast). Each
// generated file then links beside the real CPU and CUDA backends: no host
// symbol of the nvcc-built dd::kernels::cuda is defined twice.
#define cuda emu
#define cuda_rng emu_rng
#define cuda_cast emu_cast
// "CUDA" tensors of the emulated ops are host tensors (and NaN-poisoned like
// any new tensor when the test runner turns poisoning on).
#define CUDA CPU
// No stream: the emulated launch runs at once, on the calling thread.
namespace dd {
inline cudaStream_t dd_emu_no_stream() { return nullptr; }
}  // namespace dd
#define cuda_stream dd_emu_no_stream
// Device memory is host memory: engine/device.h's cuda_mem calls, host versions.
namespace dd::dd_emu_mem {
inline void* alloc(std::size_t bytes) { return ::operator new(bytes == 0 ? 1 : bytes); }
inline void free(void* p) noexcept { ::operator delete(p); }
inline void copy_h2d(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
inline void copy_d2h(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
inline void copy_d2d(void* dst, const void* src, std::size_t bytes) { std::memmove(dst, src, bytes); }
inline void memset(void* dst, int value, std::size_t bytes) { std::memset(dst, value, bytes); }
inline void fill_f32(float* dst, float value, std::size_t count) { std::fill(dst, dst + count, value); }
inline void synchronize() {}
inline void write_small(void* dst, const void* src, std::size_t bytes) { std::memcpy(dst, src, bytes); }
}  // namespace dd::dd_emu_mem
#define cuda_mem dd_emu_mem
#undef DD_CUDA_LAUNCH_CHECK
#define DD_CUDA_LAUNCH_CHECK(what) ((void)(what))
// The kernel sources' device-only sections (e.g. conv2d_tiles.cuh's
// tile_product) are compiled for the host as well.
#define __CUDACC__ 1

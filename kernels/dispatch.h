#pragma once
// How a public kernel entry point picks its backend. Each op declares
//   dd::kernels::<op>(...)        shape checks, then dispatch   (kernels/<op>.cpp)
//   dd::kernels::cpu::<op>(...)   the CPU backend               (kernels/cpu/<op>.cpp)
//   dd::kernels::cuda::<op>(...)  the CUDA backend              (kernels/cuda/<op>.cu)
// The CUDA declaration exists only in CUDA builds, so a CPU-only build never
// links against a missing symbol, and asking it for CUDA gives a clear error.
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/op_profile.h"

namespace dd::kernels {

[[noreturn]] void no_cuda_backend(const char* op);
[[noreturn]] void no_cuda_kernel(const char* op);

// Throws, naming the op and every operand, unless all defined tensors share one device.
Device common_device(const char* op, std::initializer_list<const Tensor*> ts);
Device common_device(const char* op, const std::vector<const Tensor*>& ts);  // a list built at run time

}  // namespace dd::kernels

#ifdef DD_WITH_CUDA
#define DD_CUDA_BRANCH(fn, ...) return cuda::fn(__VA_ARGS__);
#else
#define DD_CUDA_BRANCH(fn, ...) ::dd::kernels::no_cuda_backend(#fn);
#endif

// The CPU call, timed while kernels/op_profile.h's profiling is on.
#define DD_CPU_CALL(fn, ...)                                        \
  {                                                                 \
    const ::dd::kernels::op_profile::Scope dd_profile_scope_(#fn); \
    return cpu::fn(__VA_ARGS__);                                    \
  }

// Use inside a function returning the op's result: returns from it.
#define DD_DISPATCH(dev, fn, ...)                                     \
  do {                                                                \
    if ((dev) == ::dd::Device::CPU) DD_CPU_CALL(fn, __VA_ARGS__)      \
    DD_CUDA_BRANCH(fn, __VA_ARGS__)                                   \
  } while (0)

// For ops whose CUDA kernel has not been written yet (see the CUDA backend issue).
#define DD_DISPATCH_CPU_ONLY(dev, fn, ...)                            \
  do {                                                                \
    if ((dev) == ::dd::Device::CPU) DD_CPU_CALL(fn, __VA_ARGS__)      \
    ::dd::kernels::no_cuda_kernel(#fn);                               \
  } while (0)

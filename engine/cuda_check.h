#pragma once
// Every CUDA runtime call and every kernel launch goes through these, so an
// error throws dd::Error naming the file, the line and the failing call.
#include <cuda_runtime.h>

#include "engine/error.h"

#define DD_CUDA_CHECK(call)                                                               \
  do {                                                                                    \
    cudaError_t dd_err_ = (call);                                                         \
    if (dd_err_ != cudaSuccess)                                                           \
      ::dd::throw_error(__FILE__, __LINE__,                                               \
                        ::dd::str_cat(#call, " failed: ", cudaGetErrorName(dd_err_), ": ", \
                                      cudaGetErrorString(dd_err_)));                      \
  } while (0)

namespace dd::cuda_mem {
void count_launch() noexcept;  // engine/device.h
}

// After a <<<...>>> launch: catches bad launch configurations at once, and counts the launch
// (cuda_mem::Stats::launches).
#define DD_CUDA_LAUNCH_CHECK(what)     \
  do {                                 \
    ::dd::cuda_mem::count_launch();    \
    DD_CUDA_CHECK(cudaGetLastError()); \
  } while (0)

#pragma once
// The engine's cuBLAS handle, bound to the engine stream, and a check macro
// that throws naming the file, the line and the failing call.
#include <cublas_v2.h>

#include "engine/error.h"

#define DD_CUBLAS_CHECK(call)                                                                        \
  do {                                                                                               \
    cublasStatus_t dd_st_ = (call);                                                                  \
    if (dd_st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      ::dd::throw_error(__FILE__, __LINE__,                                                          \
                        ::dd::str_cat(#call, " failed: ", cublasGetStatusName(dd_st_), ": ",          \
                                      cublasGetStatusString(dd_st_)));                               \
  } while (0)

namespace dd::kernels::cuda {
// The current context's handle (engine/cuda_context.h). Pedantic fp32 math (no TF32) unless
// set_tf32(true), which sets the context's precision policy:
// the default path must agree with the CPU backend to fp32 rounding.
cublasHandle_t cublas_handle();
void set_tf32(bool on);
bool tf32_enabled();
}  // namespace dd::kernels::cuda

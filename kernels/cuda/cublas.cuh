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
// Created on first use. Pedantic fp32 math (no TF32) unless set_tf32(true):
// the default path must agree with the CPU backend to fp32 rounding.
cublasHandle_t cublas_handle();
void set_tf32(bool on);
bool tf32_enabled();
}  // namespace dd::kernels::cuda

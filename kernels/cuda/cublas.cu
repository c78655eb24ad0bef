#include "engine/cuda_stream.h"
#include "kernels/cuda/cublas.cuh"

namespace dd::kernels::cuda {

namespace {
bool g_tf32 = false;
cublasMath_t math_mode() { return g_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH; }
}  // namespace

cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    DD_CUBLAS_CHECK(cublasCreate(&h));
    DD_CUBLAS_CHECK(cublasSetStream(h, ::dd::cuda_stream()));
    DD_CUBLAS_CHECK(cublasSetMathMode(h, math_mode()));
    return h;
  }();
  return handle;
}

void set_tf32(bool on) {
  g_tf32 = on;
  DD_CUBLAS_CHECK(cublasSetMathMode(cublas_handle(), math_mode()));
}
bool tf32_enabled() { return g_tf32; }

}  // namespace dd::kernels::cuda

#include "engine/cuda_context.h"
#include "kernels/cuda/cublas.cuh"

namespace dd::kernels::cuda {

// The handle and the math mode belong to the current context (engine/context.h).
cublasHandle_t cublas_handle() { return context_cublas(current_context()); }

void set_tf32(bool on) { current_context().set_precision(on ? Precision::TF32 : Precision::FP32); }
bool tf32_enabled() { return current_context().precision() != Precision::FP32; }

}  // namespace dd::kernels::cuda

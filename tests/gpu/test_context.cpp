// The execution context on the GPU: a second context has its own stream and cuBLAS handle, ops in
// its scope run there with its precision policy, and the default context is back afterwards.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/context.h"
#include "engine/cuda_stream.h"
#include "engine/device.h"
#include "kernels/cuda/cublas.cuh"
#include "kernels/elementwise.h"
#include "kernels/linear.h"

using namespace dd;

TEST_CASE("gpu context: a second context runs ops on its own stream and handle, then the default is back",
          "[gpu][context]") {
  const Tensor a = Tensor::full({4, 8}, 2.0f, Device::CUDA);
  const Tensor w = Tensor::full({3, 8}, 0.5f, Device::CUDA), bias = Tensor::full({3}, 1.0f, Device::CUDA);
  const cudaStream_t s0 = cuda_stream();
  const cublasHandle_t h0 = kernels::cuda::cublas_handle();
  cuda_mem::synchronize();  // a and w were written on the default stream; the other stream reads them
  Context other(0);
  other.set_precision(Precision::TF32);
  Tensor y, z;
  {
    ContextScope scope(other);
    CHECK(cuda_stream() != s0);
    CHECK(kernels::cuda::cublas_handle() != h0);
    CHECK(kernels::cuda::tf32_enabled());
    y = kernels::affine(a, 3.0f, 1.0f);
    z = kernels::linear_forward(a, w, bias);  // 8 * 2 * 0.5 + 1, exact in TF32 too
    cuda_mem::synchronize();
  }
  CHECK(cuda_stream() == s0);
  CHECK_FALSE(kernels::cuda::tf32_enabled());
  CHECK(y.to(Device::CPU).to_vector() == std::vector<float>(32, 7.0f));
  CHECK(z.to(Device::CPU).to_vector() == std::vector<float>(12, 9.0f));
}

// Softmax attention for heads wider than the flash kernels' registers hold (dim_head > 128, e.g.
// google/ddpm-cifar10-32's single head over 256 channels at 16x16): the N x N scores are
// materialised per (batch, head), the products run as cuBLAS strided-batched SGEMMs (pedantic fp32,
// as kernels/cuda/linear.cu; no per-thread rows, so no spills) and the softmax and its backward as
// row kernels. The plans and kernels are in attention_wide_kernels.cuh (emulated on the CPU by
// tests/test_attention_wide_emulation.cpp). One head at a time; scratch is 2 x B x N x N floats.
#include <climits>

#include "kernels/attention.h"
#include "kernels/cuda/attention_wide_kernels.cuh"
#include "kernels/cuda/cublas.cuh"
#include "kernels/cuda/launch.cuh"

namespace dd::kernels::cuda {

namespace {
int as_int(int64_t v, const char* what) {
  DD_CHECK(v >= 0 && v <= INT_MAX, "attention (cuda, wide heads): ", what, " = ", v, " exceeds int");
  return static_cast<int>(v);
}

struct CublasGemm {
  void operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
                  int64_t sa, const float* B, int64_t ldb, int64_t sb, float* C, int64_t ldc, int64_t sc,
                  int64_t batch) const {
    const float beta = 0.0f;
    DD_CUBLAS_CHECK(cublasSgemmStridedBatched(
        cublas_handle(), ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, as_int(m, "m"),
        as_int(n, "n"), as_int(k, "k"), &alpha, A, as_int(lda, "lda"), sa, B, as_int(ldb, "ldb"), sb, &beta, C,
        as_int(ldc, "ldc"), sc, as_int(batch, "B")));
  }
};

struct Launcher {
  template <class Kernel>
  void operator()(Kernel kernel, unsigned blocks, int threads, const char* name, const attn_wide::RowParams& p) const {
    kernel<<<blocks, threads, 0, stream()>>>(p);
    (void)name;
    DD_CUDA_LAUNCH_CHECK(name);
  }
};

attn_wide::Dims dims_of(const Tensor& qkv, int64_t heads, int64_t d) {
  const int64_t B = qkv.dim(0), C = qkv.dim(-1);
  const attn_wide::Dims g{B, qkv.numel() / (B * C), heads, d, heads * d, C};
  as_int(g.B * g.N, "B*N (blocks)");
  return g;
}
}  // namespace

Tensor attention_wide_forward(const Tensor& qkv, int64_t heads, int64_t dim_head) {
  const attn_wide::Dims g = dims_of(qkv, heads, dim_head);
  Shape out_shape = qkv.shape();
  out_shape.back() = g.hidden;
  Tensor out = Tensor::empty(out_shape, qkv.device());
  if (g.B == 0 || g.N == 0) return out;
  Tensor P = Tensor::empty({g.B, g.N, g.N}, qkv.device());
  attn_wide::forward_plan(qkv.data(), out.data(), P.data(), g, CublasGemm{}, Launcher{});
  return out;
}

Tensor attention_wide_backward(const Tensor& qkv, const Tensor& dy, int64_t heads, int64_t dim_head) {
  const attn_wide::Dims g = dims_of(qkv, heads, dim_head);
  Tensor dqkv = Tensor::empty(qkv.shape(), qkv.device());
  if (g.B == 0 || g.N == 0) return dqkv;
  Tensor P = Tensor::empty({g.B, g.N, g.N}, qkv.device()), dS = Tensor::empty({g.B, g.N, g.N}, qkv.device());
  attn_wide::backward_plan(qkv.data(), dy.data(), dqkv.data(), P.data(), dS.data(), g, CublasGemm{}, Launcher{});
  return dqkv;
}

}  // namespace dd::kernels::cuda

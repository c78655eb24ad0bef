// The wide-head CUDA attention's plans and row kernels (kernels/cuda/attention_wide_kernels.cuh),
// run on the host: the row kernels through tests/support/cuda_emulation.h, the cuBLAS products by
// a naive column-major strided-batched GEMM with cuBLAS's argument conventions. Against the CPU
// backend at ddpm-cifar10-32's head (1 x 256 channels) and with two heads of 130. This checks the
// GEMM transposes, leading dimensions and strides on machines with no GPU; tests/gpu/test_attention.cpp
// checks the real cuBLAS path on a device.
#include <catch2/catch.hpp>

#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "tests/support/compare.h"
#include "tests/support/cuda_emulation.h"

#define cuda emu
#include "kernels/cuda/attention_wide_kernels.cuh"
#undef cuda

using namespace dd;
using namespace dd::test;
namespace kw = dd::kernels::emu::attn_wide;

namespace {
// cublasSgemmStridedBatched with beta 0: C[b] (ldc) = alpha op(A[b]) op(B[b]), column-major.
struct HostGemm {
  void operator()(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
                  int64_t sa, const float* B, int64_t ldb, int64_t sb, float* C, int64_t ldc, int64_t sc,
                  int64_t batch) const {
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < m; ++i) {
          double s = 0.0;
          for (int64_t l = 0; l < k; ++l) {
            const float a = ta ? A[b * sa + i * lda + l] : A[b * sa + l * lda + i];
            const float bb = tb ? B[b * sb + l * ldb + j] : B[b * sb + j * ldb + l];
            s += static_cast<double>(a) * bb;
          }
          C[b * sc + j * ldc + i] = static_cast<float>(alpha * s);
        }
  }
};
struct EmuLaunch {
  template <class Kernel>
  void operator()(Kernel kernel, unsigned blocks, int threads, const char*, const kw::RowParams& p) const {
    dd_emu::launch(kernel, blocks, static_cast<unsigned>(threads), p);
  }
};
std::vector<float> nans(int64_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }
}  // namespace

TEST_CASE("emulated wide-head attention plans match the cpu (d 256 one head, d 130 two heads)", "[attention][emu]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    int64_t B, N, heads, d;
  };
  for (const Case& c : {Case{2, 16, 1, 256}, Case{1, 9, 2, 130}, Case{1, 300, 1, 129}}) {
    INFO("B" << c.B << " N" << c.N << " heads " << c.heads << " d " << c.d);
    const int64_t hidden = c.heads * c.d, C = 3 * hidden;
    Tensor qkv = from_double({c.B, c.N, C}, rng.normal_f32(c.B * c.N * C));
    Tensor dy = from_double({c.B, c.N, hidden}, rng.normal_f32(c.B * c.N * hidden));
    const kw::Dims g{c.B, c.N, c.heads, c.d, hidden, C};
    std::vector<float> out = nans(c.B * c.N * hidden), P = nans(c.B * c.N * c.N), dS = nans(c.B * c.N * c.N);
    std::vector<float> dqkv = nans(c.B * c.N * C);
    kw::forward_plan(qkv.data(), out.data(), P.data(), g, HostGemm{}, EmuLaunch{});
    expect_close("forward", Tensor::from_vector({c.B, c.N, hidden}, out),
                 kernels::cpu::attention_forward(qkv, c.heads, c.d), 1e-5);
    kw::backward_plan(qkv.data(), dy.data(), dqkv.data(), P.data(), dS.data(), g, HostGemm{}, EmuLaunch{});
    expect_close("backward", Tensor::from_vector({c.B, c.N, C}, dqkv),
                 kernels::cpu::attention_backward(qkv, dy, c.heads, c.d), 1e-4);
  }
}

// The CUDA attention kernels' device code, run on the host through
// tests/support/cuda_emulation.h (one std::thread per CUDA thread, a barrier
// per __syncthreads), against the CPU backend. This checks the tiling, the
// boundary guards, the barrier placement and the launch plans on machines with
// no GPU; tests/gpu/test_attention.cpp and test_linear_attention.cpp check the
// compiled kernels on a device.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/linear_attention.h"
#include "tests/support/compare.h"
#include "tests/support/cuda_emulation.h"

// Read the kernels into namespace dd::kernels::emu: in CUDA builds the real
// dd::kernels::cuda templates (nvcc's host stubs) live in the same binary, and
// same-named host instantiations would be merged by the linker.
#define cuda emu
#include "kernels/cuda/attention_kernels.cuh"
#include "kernels/cuda/linear_attention_kernels.cuh"
#undef cuda

using namespace dd;
using namespace dd::test;
namespace kc = dd::kernels::emu;

namespace {
struct Case {
  int64_t B, N, heads, d;
  double scale = 1.0;
  std::string name() const {
    return "B" + std::to_string(B) + " N" + std::to_string(N) + " heads " + std::to_string(heads) + " d " +
           std::to_string(d) + " scale " + std::to_string(scale);
  }
  Shape qkv_shape() const { return {B, N, 3 * heads * d}; }
  Shape out_shape() const { return {B, N, heads * d}; }
};

struct EmuLaunch {
  template <class Kernel, class P>
  void operator()(Kernel kernel, unsigned blocks, int threads, const char*, const P& p) const {
    dd_emu::launch(kernel, blocks, static_cast<unsigned>(threads), p);
  }
};

// Outputs and scratch start as NaN, as on the GPU runner: an unwritten element fails.
std::vector<float> nans(int64_t n) { return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()); }

// Sizes chosen around the tiles: 64 rows per block, key tiles of 64 (32 at d 128),
// head-kernel tiles of 2048 / kD positions; d not a power of two exercises the padding.
const Case kAttnCases[] = {
    {1, 1, 1, 8},  {2, 7, 4, 32}, {1, 65, 2, 32}, {2, 300, 1, 16}, {1, 49, 1, 20},
    {1, 70, 1, 64}, {1, 33, 1, 128}, {1, 16, 4, 32, 10.0},  // logits ~ +-100: needs the running max
};
const Case kLinCases[] = {
    {1, 1, 1, 8},  {2, 7, 4, 32},  {1, 65, 2, 32},  {2, 300, 1, 16},
    {1, 49, 1, 20}, {1, 70, 1, 64}, {1, 600, 1, 8}, {1, 16, 2, 32, 10.0},
};
}  // namespace

TEST_CASE("emulated cuda attention kernels match the cpu", "[attention][cuda_emulation]") {
  DD_TEST_RANDOM(rng);
  for (const Case& c : kAttnCases) {
    SECTION(c.name()) {
      Tensor qkv = from_double(c.qkv_shape(), rng.normal_f32(shape_numel(c.qkv_shape()), c.scale));
      Tensor dy = from_double(c.out_shape(), rng.normal_f32(shape_numel(c.out_shape())));

      std::vector<float> out = nans(shape_numel(c.out_shape()));
      kc::attn::Params p = kc::attn::make_params("test", qkv.data(), nullptr, out.data(), nullptr, c.B, c.N,
                                                 c.heads, c.d);
      kc::attn::forward_plan(p, c.B, EmuLaunch{});
      // fp32 softmax and sums in another order than the CPU's GEMMs: 1e-4.
      expect_close("forward " + c.name(), Tensor::from_vector(c.out_shape(), out),
                   kernels::cpu::attention_forward(qkv, c.heads, c.d), 1e-4);

      std::vector<float> dqkv = nans(shape_numel(c.qkv_shape()));
      std::vector<float> stats = nans(kc::attn::backward_scratch_floats(c.B, c.N, c.heads));
      p = kc::attn::make_params("test", qkv.data(), dy.data(), dqkv.data(), stats.data(), c.B, c.N, c.heads, c.d);
      kc::attn::backward_plan(p, c.B, EmuLaunch{});
      // Recomputed softmax and sums over N in another order: 1e-4; with qkv at scale 10 the logits are
      // ~100x larger, and their fp32 rounding reaches the softmax gradient (seen: 1.2e-4 with
      // DD_TEST_SEED=1735172113131959065): 3e-4 there.
      expect_close("backward " + c.name(), Tensor::from_vector(c.qkv_shape(), dqkv),
                   kernels::cpu::attention_backward(qkv, dy, c.heads, c.d), c.scale > 1.0 ? 3e-4 : 1e-4);
    }
  }
}

TEST_CASE("emulated cuda linear attention kernels match the cpu", "[linear_attention][cuda_emulation]") {
  DD_TEST_RANDOM(rng);
  for (const Case& c : kLinCases) {
    SECTION(c.name()) {
      Tensor qkv = from_double(c.qkv_shape(), rng.normal_f32(shape_numel(c.qkv_shape()), c.scale));
      Tensor dy = from_double(c.out_shape(), rng.normal_f32(shape_numel(c.out_shape())));
      std::vector<float> scratch = nans(kc::linattn::scratch_floats(c.B, c.heads, c.d));

      std::vector<float> out = nans(shape_numel(c.out_shape()));
      kc::linattn::Params p = kc::linattn::make_params("test", qkv.data(), nullptr, out.data(), scratch.data(),
                                                       c.B, c.N, c.heads, c.d);
      kc::linattn::plan<false>(p, c.B, EmuLaunch{});
      // Softmaxes and sums over N in another order than the CPU's: 1e-4.
      expect_close("forward " + c.name(), Tensor::from_vector(c.out_shape(), out),
                   kernels::cpu::linear_attention_forward(qkv, c.heads, c.d), 1e-4);

      std::vector<float> dqkv = nans(shape_numel(c.qkv_shape()));
      p = kc::linattn::make_params("test", qkv.data(), dy.data(), dqkv.data(), scratch.data(), c.B, c.N, c.heads,
                                   c.d);
      kc::linattn::plan<true>(p, c.B, EmuLaunch{});
      expect_close("backward " + c.name(), Tensor::from_vector(c.qkv_shape(), dqkv),
                   kernels::cpu::linear_attention_backward(qkv, dy, c.heads, c.d), 1e-4);
    }
  }
}

TEST_CASE("emulated cuda linear attention: a k column that is -inf in the first tile only", "[linear_attention][cuda_emulation]") {
  DD_TEST_RANDOM(rng);
  // d 8: head-kernel tiles of 256 positions, N 600: three of them. k[:, c = 2] is -inf over the
  // first tile and finite after: the running max starts at -inf, and its first finite value must not
  // turn the column's sums into NaN (exp(-inf + inf)). The CPU computes the softmax over the whole
  // column, where those positions weigh exactly 0.
  const Case c{1, 600, 1, 8};
  std::vector<double> v = rng.normal_f32(shape_numel(c.qkv_shape()));
  const int64_t C = 3 * c.heads * c.d;
  for (int64_t n = 0; n < 256; ++n) v[n * C + c.heads * c.d + 2] = -std::numeric_limits<double>::infinity();
  const Tensor qkv = from_double(c.qkv_shape(), v);
  std::vector<float> scratch = nans(kc::linattn::scratch_floats(c.B, c.heads, c.d));
  std::vector<float> out = nans(shape_numel(c.out_shape()));
  kc::linattn::Params p = kc::linattn::make_params("test", qkv.data(), nullptr, out.data(), scratch.data(), c.B, c.N,
                                                   c.heads, c.d);
  kc::linattn::plan<false>(p, c.B, EmuLaunch{});
  const Tensor ours = Tensor::from_vector(c.out_shape(), out);
  for (float f : out) REQUIRE(std::isfinite(f));
  expect_close("forward, -inf first tile", ours, kernels::cpu::linear_attention_forward(qkv, c.heads, c.d), 1e-4);
}

TEST_CASE("cuda attention plans reject head sizes they have no kernel for", "[attention][cuda_emulation]") {
  auto none = [](auto) {};
  CHECK_THROWS_WITH(kc::attn::with_head_dim("attention_forward", 129, none),
                    Catch::Contains("dim_head up to 128"));
  CHECK_THROWS_WITH(kc::linattn::with_head_dim("linear_attention_forward", 65, none),
                    Catch::Contains("dim_head up to 64"));
  CHECK_NOTHROW(kc::attn::with_head_dim("attention_forward", 1, none));
}

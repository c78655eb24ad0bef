// The bf16 tensor-core attention (kernels/cuda/attention_tc.cu) on the GPU: the emulator's odd
// shapes (tests/emu/test_emu_attention_tc.cpp) and the U-Net's attention cores (dim_head 32,
// heads 4, 16x16 and 8x8 maps) against float64 attention on the bf16-rounded inputs and against
// the fp32 CPU backend, per element, within the bounds of tests/support/attention_tc_bounds.h.
// Results must repeat bitwise, and a BF16 Context precision must route kernels::attention_* here.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/context.h"
#include "kernels/attention.h"
#include "tests/support/attention_tc_bounds.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;
using dd::test::attn_tc::Dims;

namespace {

Tensor random_tensor(Random& rng, const Shape& shape, double scale = 1.0) {
  return from_double(shape, rng.normal_f32(shape_numel(shape), scale));
}

// lead: the leading dims of qkv and dy ({B, N} or {B, H, W}).
void check_case(Random& rng, const Dims& c, const Shape& lead) {
  INFO(c.str());
  Shape qkv_shape = lead, out_shape = lead;
  qkv_shape.push_back(3 * c.heads * c.d);
  out_shape.push_back(c.heads * c.d);
  Tensor qkv = random_tensor(rng, qkv_shape, c.scale), dy = random_tensor(rng, out_shape);
  Tensor gqkv = qkv.to(Device::CUDA), gdy = dy.to(Device::CUDA);
  const std::vector<double> in = attn_tc::host_values(qkv), g = attn_tc::host_values(dy);
  const attn_tc::Reference ref_r = attn_tc::reference(c, attn_tc::rounded(in), attn_tc::rounded(g), attn_tc::kBf16U);
  const attn_tc::Reference ref_u = attn_tc::reference(c, in, g, attn_tc::kFp32U);

  Tensor out = kernels::cuda::attention_forward_tc(gqkv, c.heads, c.d);
  REQUIRE(out.device() == Device::CUDA);
  REQUIRE(out.shape() == out_shape);
  attn_tc::expect_matches("forward " + c.str(), out, ref_r.out, ref_r.out_bound, ref_u.out, ref_u.out_bound,
                          kernels::cpu::attention_forward(qkv, c.heads, c.d));
  CHECK(attn_tc::bitwise_equal(out, kernels::cuda::attention_forward_tc(gqkv, c.heads, c.d)));

  Tensor dqkv = kernels::cuda::attention_backward_tc(gqkv, gdy, c.heads, c.d);
  REQUIRE(dqkv.shape() == qkv_shape);
  attn_tc::expect_matches("backward " + c.str(), dqkv, ref_r.dqkv, ref_r.dqkv_bound, ref_u.dqkv, ref_u.dqkv_bound,
                          kernels::cpu::attention_backward(qkv, dy, c.heads, c.d));
  CHECK(attn_tc::bitwise_equal(dqkv, kernels::cuda::attention_backward_tc(gqkv, gdy, c.heads, c.d)));
}

}  // namespace

TEST_CASE("gpu: bf16 tensor-core attention on odd shapes", "[gpu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  for (int64_t d : {32, 64, 128})
    for (int64_t N : {1, 7, 33, 70, 129})
      for (int64_t heads : {1, 3}) {
        const Dims c{2, N, heads, d};
        check_case(rng, c, {c.B, c.N});
      }
  check_case(rng, Dims{1, 70, 1, 32, 4.0}, {1, 70});  // logits ~ +-50
}

TEST_CASE("gpu: bf16 tensor-core attention on the U-Net's attention cores", "[gpu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  check_case(rng, Dims{2, 16 * 16, 4, 32}, {2, 16, 16});
  check_case(rng, Dims{2, 8 * 8, 4, 32}, {2, 8, 8});
  check_case(rng, Dims{2, 4 * 4, 4, 32}, {2, 4, 4});
}

TEST_CASE("gpu: attention under a BF16 context runs the tensor-core path", "[gpu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  const int64_t B = 2, N = 64, heads = 4;
  for (int64_t d : {32, 64, 128}) {
    Tensor qkv = random_tensor(rng, {B, N, 3 * heads * d}).to(Device::CUDA);
    Tensor dy = random_tensor(rng, {B, N, heads * d}).to(Device::CUDA);
    {
      Context ctx;
      ctx.set_precision(Precision::BF16);
      ContextScope scope(ctx);
      CHECK(attn_tc::bitwise_equal(kernels::attention_forward(qkv, heads, d),
                                   kernels::cuda::attention_forward_tc(qkv, heads, d)));
      CHECK(attn_tc::bitwise_equal(kernels::attention_backward(qkv, dy, heads, d),
                                   kernels::cuda::attention_backward_tc(qkv, dy, heads, d)));
    }
    // fp32 (the default context): the fp32 flash kernels, which differ from the bf16 rounding.
    CHECK_FALSE(attn_tc::bitwise_equal(kernels::attention_forward(qkv, heads, d),
                                       kernels::cuda::attention_forward_tc(qkv, heads, d)));
  }
}

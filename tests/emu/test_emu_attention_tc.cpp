// kernels/cuda/attention_tc.cu (bf16 tensor-core attention: mma.sync, ldmatrix, online softmax)
// run on the CPU through the host emulation. Forward and d_qkv on odd shapes (N = 1, 7, 33, 70:
// one position, tails of every tile, several tiles; heads 1..3; dim_head 32, 64, 128; batch 1
// and 2), each element held to the bounds of tests/support/attention_tc_bounds.h: against float64
// attention on the bf16-rounded inputs, and against the fp32 CPU backend with the exact effect of
// the input rounding added. Outputs are NaN-poisoned by the test runner (an element no kernel wrote
// fails), and every result is recomputed and must repeat bitwise.
// Shapes stay small: every emulated thread is a fiber, and each mma a rendezvous of 32 of them.
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "tests/emu/emu_test_util.h"
#include "tests/support/attention_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
using dd::test::attn_tc::Dims;

namespace {

void check_case(Random& rng, const Dims& c) {
  INFO(c.str());
  Tensor qkv = rnd(rng, c.qkv_shape(), c.scale), dy = rnd(rng, c.out_shape());
  const std::vector<double> in = attn_tc::host_values(qkv), g = attn_tc::host_values(dy);
  const attn_tc::Reference ref_r = attn_tc::reference(c, attn_tc::rounded(in), attn_tc::rounded(g), attn_tc::kBf16U);
  const attn_tc::Reference ref_u = attn_tc::reference(c, in, g, attn_tc::kFp32U);

  Tensor out = kernels::emu::attention_forward_tc(qkv, c.heads, c.d);
  REQUIRE(out.shape() == c.out_shape());
  attn_tc::expect_matches("forward " + c.str(), out, ref_r.out, ref_r.out_bound, ref_u.out, ref_u.out_bound,
                          kernels::cpu::attention_forward(qkv, c.heads, c.d));
  CHECK(attn_tc::bitwise_equal(out, kernels::emu::attention_forward_tc(qkv, c.heads, c.d)));

  Tensor dqkv = kernels::emu::attention_backward_tc(qkv, dy, c.heads, c.d);
  REQUIRE(dqkv.shape() == c.qkv_shape());
  attn_tc::expect_matches("backward " + c.str(), dqkv, ref_r.dqkv, ref_r.dqkv_bound, ref_u.dqkv, ref_u.dqkv_bound,
                          kernels::cpu::attention_backward(qkv, dy, c.heads, c.d));
  CHECK(attn_tc::bitwise_equal(dqkv, kernels::emu::attention_backward_tc(qkv, dy, c.heads, c.d)));
}

}  // namespace

// Tiles (attention_tc_kernels.cuh): 64 query rows per forward block with key tiles of 64 (32 at
// dim_head 128); the backward owns 64 rows per block (32 at 128) and streams tiles of as many.
TEST_CASE("emu: bf16 tensor-core attention, dim_head 32", "[emu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  for (const Dims& c : {Dims{1, 1, 1, 32}, Dims{2, 7, 3, 32}, Dims{1, 70, 2, 32}}) check_case(rng, c);
}

TEST_CASE("emu: bf16 tensor-core attention, dim_head 64", "[emu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  for (const Dims& c : {Dims{2, 33, 1, 64}, Dims{1, 70, 1, 64}}) check_case(rng, c);
}

TEST_CASE("emu: bf16 tensor-core attention, dim_head 128", "[emu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  for (const Dims& c : {Dims{1, 7, 2, 128}, Dims{1, 70, 1, 128}}) check_case(rng, c);
}

TEST_CASE("emu: bf16 tensor-core attention with logits ~ +-50 (the running max)", "[emu][attention][tc]") {
  DD_TEST_RANDOM(rng);
  // Inputs at scale 4: |s| reaches ~50, exp overflows fp32 without the max subtraction, and a
  // missed rescale between key tiles (N = 70: two tiles) is far outside the bound.
  check_case(rng, Dims{1, 70, 1, 32, 4.0});
}

TEST_CASE("emu: bf16 tensor-core attention refuses other head widths", "[emu][attention][tc]") {
  Tensor qkv = Tensor::zeros({1, 4, 3 * 16});
  CHECK_THROWS_WITH(kernels::emu::attention_forward_tc(qkv, 1, 16), Catch::Contains("dim_head 32, 64 or 128"));
  CHECK_THROWS_WITH(kernels::emu::attention_forward_tc(qkv, 2, 32), Catch::Contains("3 * heads * dim_head"));
}

// kernels/cuda/linear_attention_tc.cu (linear attention on bf16 tensor cores: mma.sync, ldmatrix,
// the column softmax kept online) run on the CPU through the host emulation. Forward and d_qkv on
// odd shapes (N = 1, 7, 33, 70, 150: one position, tails of every tile, several head-kernel tiles;
// and N = 64, 128: whole tiles;
// heads 1..3; dim_head 32 and 64; batch 1 and 2), each element held to the bounds of
// tests/support/linear_attention_tc_bounds.h against float64 linear attention on the bf16-rounded
// inputs. The CPU backend under BF16 is held to the same reference with its fp32 bound (it must
// round the same inputs). Outputs are NaN-poisoned by the test runner (an element no kernel wrote
// fails), and every result is recomputed and must repeat bitwise, and again from qkv stored in
// bf16 (read as it is: the same bits).
#include "tests/emu/emu_ops.h"

#include <catch2/catch.hpp>

#include "engine/context.h"
#include "tests/emu/emu_test_util.h"
#include "tests/support/linear_attention_tc_bounds.h"

using namespace dd;
using namespace dd::test;
using dd::emu_test::rnd;
using dd::test::linattn_tc::Dims;

namespace {

void check_case(Random& rng, const Dims& c) {
  INFO(c.str());
  Tensor qkv = rnd(rng, c.qkv_shape(), c.scale), dy = rnd(rng, c.out_shape());
  const std::vector<double> in = linattn_tc::rounded_values(qkv), g = linattn_tc::rounded_values(dy);
  const linattn_tc::Reference tc = linattn_tc::reference(c, in, g, linattn_tc::kBf16U);
  const linattn_tc::Reference fp = linattn_tc::reference(c, in, g, 0.0);

  Tensor out = kernels::emu::linear_attention_forward_tc(qkv, c.heads, c.d);
  REQUIRE(out.shape() == c.out_shape());
  linattn_tc::expect_within("tensor-core forward", out, tc.out, tc.out_bound);
  CHECK(linattn_tc::bitwise_equal(out, kernels::emu::linear_attention_forward_tc(qkv, c.heads, c.d)));

  Tensor dqkv = kernels::emu::linear_attention_backward_tc(qkv, dy, c.heads, c.d);
  REQUIRE(dqkv.shape() == c.qkv_shape());
  linattn_tc::expect_within("tensor-core backward", dqkv, tc.dqkv, tc.dqkv_bound);
  CHECK(linattn_tc::bitwise_equal(dqkv, kernels::emu::linear_attention_backward_tc(qkv, dy, c.heads, c.d)));
  // A bf16 qkv (the qkv conv's output under BF16) is read as it is: the same bits as its fp32 self.
  const Tensor qkv_bf16 = qkv.to(DType::BF16);
  CHECK(linattn_tc::bitwise_equal(out, kernels::emu::linear_attention_forward_tc(qkv_bf16, c.heads, c.d)));
  CHECK(linattn_tc::bitwise_equal(dqkv, kernels::emu::linear_attention_backward_tc(qkv_bf16, dy, c.heads, c.d)));
  // The output written in bf16 (for to_out under BF16): the fp32 output's bits, rounded.
  const Tensor out_bf16 = kernels::emu::linear_attention_forward_tc_bf16(qkv_bf16, c.heads, c.d);
  REQUIRE(out_bf16.dtype() == DType::BF16);
  CHECK(bf16_bits(out_bf16) == bf16_bits(out.to(Device::CPU).to(DType::BF16)));

  const PrecisionScope bf16(Precision::BF16);
  linattn_tc::expect_within("cpu forward under BF16", kernels::cpu::linear_attention_forward(qkv, c.heads, c.d),
                            fp.out, fp.out_bound);
  linattn_tc::expect_within("cpu backward under BF16",
                            kernels::cpu::linear_attention_backward(qkv, dy, c.heads, c.d), fp.dqkv, fp.dqkv_bound);
  CHECK(linattn_tc::bitwise_equal(kernels::cpu::linear_attention_forward(qkv, c.heads, c.d),
                                  kernels::cpu::linear_attention_forward(qkv_bf16, c.heads, c.d)));
  CHECK(linattn_tc::bitwise_equal(kernels::cpu::linear_attention_backward(qkv, dy, c.heads, c.d),
                                  kernels::cpu::linear_attention_backward(qkv_bf16, dy, c.heads, c.d)));
  CHECK(bf16_bits(kernels::cpu::linear_attention_forward_bf16(qkv, c.heads, c.d)) ==
        bf16_bits(kernels::cpu::linear_attention_forward(qkv, c.heads, c.d).to(DType::BF16)));
}

}  // namespace

// Tiles (linear_attention_tc_kernels.cuh): the head kernel takes 64 positions a tile at dim_head 32
// (32 at 64); the rows kernel 64 positions a block (32 at 64).
TEST_CASE("emu: bf16 tensor-core linear attention, dim_head 32", "[emu][linear_attention][tc]") {
  DD_TEST_RANDOM(rng);
  // N = 64, 128: whole tiles, no tail.
  for (const Dims& c : {Dims{1, 1, 1, 32}, Dims{2, 7, 3, 32}, Dims{1, 70, 2, 32}, Dims{1, 150, 1, 32},
                        Dims{1, 64, 1, 32}, Dims{1, 128, 1, 32}})
    check_case(rng, c);
}

TEST_CASE("emu: bf16 tensor-core linear attention, dim_head 64", "[emu][linear_attention][tc]") {
  DD_TEST_RANDOM(rng);
  for (const Dims& c : {Dims{2, 33, 1, 64}, Dims{1, 70, 2, 64}, Dims{1, 64, 1, 64}}) check_case(rng, c);
}

TEST_CASE("emu: bf16 tensor-core linear attention with k ~ +-50 (the running column max)", "[emu][linear_attention][tc]") {
  DD_TEST_RANDOM(rng);
  // Inputs at scale 16: exp overflows fp32 without the max subtraction, and a context row not
  // rescaled when a later tile raises its column's max (N = 150: three tiles) is far outside the bound.
  check_case(rng, Dims{1, 150, 1, 32, 16.0});
  check_case(rng, Dims{1, 70, 1, 64, 16.0});
}

TEST_CASE("emu: bf16 tensor-core linear attention refuses other head widths", "[emu][linear_attention][tc]") {
  Tensor qkv = Tensor::zeros({1, 4, 3 * 16});
  CHECK_THROWS_WITH(kernels::emu::linear_attention_forward_tc(qkv, 1, 16), Catch::Contains("dim_head 32 or 64"));
  CHECK_THROWS_WITH(kernels::emu::linear_attention_forward_tc(qkv, 2, 32), Catch::Contains("3 * heads * dim_head"));
  CHECK_THROWS_WITH(kernels::emu::linear_attention_backward_tc(Tensor::zeros({1, 4, 96}), Tensor::zeros({1, 4, 16}), 1, 32),
                    Catch::Contains("dy"));
}

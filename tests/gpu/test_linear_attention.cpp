// GPU vs CPU for the linear attention: forward and d_qkv over a
// sweep of batch, heads, dim_head and positions around the kernels' tiles
// (64 positions per rows block; 2048 / dim_head positions per head-kernel tile); under BF16 the
// tensor-core kernels against their bound.
#include <catch2/catch.hpp>

#include <string>

#include "engine/context.h"
#include "kernels/linear_attention.h"
#include "tests/support/compare.h"
#include "tests/support/linear_attention_tc_bounds.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  int64_t B, N, heads, d;
  double scale = 1.0;
  std::string name() const {
    return "B" + std::to_string(B) + " N" + std::to_string(N) + " heads " + std::to_string(heads) + " d " +
           std::to_string(d) + " scale " + std::to_string(scale);
  }
};

void check_case(const Case& c, Random& rng, const Shape& lead) {
  const int64_t hidden = c.heads * c.d;
  Shape qkv_shape = lead, out_shape = lead;
  qkv_shape.push_back(3 * hidden);
  out_shape.push_back(hidden);
  Tensor qkv = from_double(qkv_shape, rng.normal_f32(shape_numel(qkv_shape), c.scale));
  Tensor dy = from_double(out_shape, rng.normal_f32(shape_numel(out_shape)));
  Tensor gqkv = qkv.to(Device::CUDA), gdy = dy.to(Device::CUDA);

  Tensor out = kernels::linear_attention_forward(gqkv, c.heads, c.d);
  REQUIRE(out.shape() == out_shape);
  // Softmaxes (exp) and sums over N and dim_head in another order than the CPU: 1e-4.
  expect_close("linear_attention forward " + c.name(), out.to(Device::CPU),
               kernels::linear_attention_forward(qkv, c.heads, c.d), 1e-4);

  Tensor dqkv = kernels::linear_attention_backward(gqkv, gdy, c.heads, c.d);
  REQUIRE(dqkv.shape() == qkv_shape);
  // Recomputed softmaxes, context sums over N in another order: 1e-4.
  expect_close("linear_attention backward " + c.name(), dqkv.to(Device::CPU),
               kernels::linear_attention_backward(qkv, dy, c.heads, c.d), 1e-4);
}
}  // namespace

TEST_CASE("gpu: linear_attention matches the cpu over the sweep", "[gpu][linear_attention][sweep]") {
  DD_TEST_RANDOM(rng);
  for (int64_t B : {1, 2})
    for (int64_t heads : {1, 4})
      for (int64_t d : {8, 32})
        for (int64_t N : {1, 7, 16, 49, 65, 300}) {
          const Case c{B, N, heads, d};
          SECTION(c.name()) { check_case(c, rng, {B, N}); }
        }
}

TEST_CASE("gpu: linear_attention on other head sizes, spatial shapes and large logits", "[gpu][linear_attention]") {
  DD_TEST_RANDOM(rng);
  SECTION("4x4 and 7x7 spatial") {
    check_case({2, 16, 4, 32}, rng, {2, 4, 4});
    check_case({3, 49, 4, 32}, rng, {3, 7, 7});
    check_case({1, 1, 4, 32}, rng, {1, 1, 1});  // 1x1 spatial
  }
  SECTION("dim_head 1, 5, 16, 20, 64") {
    for (int64_t d : {1, 5, 16, 20, 64}) check_case({2, 70, 2, d}, rng, {2, 70});
  }
  SECTION("N 1024 (32x32, the U-Net's top level), 4096 and 129") {
    check_case({8, 1024, 4, 32}, rng, {8, 32, 32});
    check_case({1, 4096, 1, 8}, rng, {1, 64, 64});
    check_case({2, 129, 1, 32}, rng, {2, 129});
  }
  SECTION("activations ~ +-30: exp overflows without the max subtraction") {
    check_case({2, 49, 4, 32, 30.0}, rng, {2, 49});
    check_case({1, 300, 1, 8, 30.0}, rng, {1, 300});
  }
}

TEST_CASE("gpu: linear_attention is bitwise repeatable", "[gpu][linear_attention]") {
  DD_TEST_RANDOM(rng);
  const int64_t B = 4, N = 81, heads = 4, d = 32;
  Tensor qkv = from_double({B, N, 3 * heads * d}, rng.normal_f32(B * N * 3 * heads * d)).to(Device::CUDA);
  Tensor dy = from_double({B, N, heads * d}, rng.normal_f32(B * N * heads * d)).to(Device::CUDA);
  CHECK(kernels::linear_attention_forward(qkv, heads, d).to_vector() ==
        kernels::linear_attention_forward(qkv, heads, d).to_vector());
  CHECK(kernels::linear_attention_backward(qkv, dy, heads, d).to_vector() ==
        kernels::linear_attention_backward(qkv, dy, heads, d).to_vector());
}

TEST_CASE("gpu: linear_attention rejects a dim_head it has no kernel for", "[gpu][linear_attention]") {
  Tensor qkv = Tensor::zeros({1, 2, 3 * 65}, Device::CUDA);
  CHECK_THROWS_WITH(kernels::linear_attention_forward(qkv, 1, 65), Catch::Contains("dim_head up to 64"));
}

// Under BF16, dim_head 32 and 64 run on the bf16 tensor cores (kernels/cuda/linear_attention_tc.cu):
// each element within the bound of tests/support/linear_attention_tc_bounds.h of float64 linear
// attention on the bf16-rounded inputs, bitwise repeatable, and the CPU under the same policy
// within its fp32 bound of the same reference.
TEST_CASE("gpu: bf16 tensor-core linear_attention within its bound", "[gpu][linear_attention][tc]") {
  DD_TEST_RANDOM(rng);
  const PrecisionScope bf16(Precision::BF16);
  for (const linattn_tc::Dims& c : {linattn_tc::Dims{2, 7, 3, 32}, linattn_tc::Dims{2, 1024, 2, 32},
                                    linattn_tc::Dims{1, 129, 1, 64}, linattn_tc::Dims{2, 256, 4, 64},
                                    linattn_tc::Dims{1, 300, 2, 32, 16.0}}) {
    INFO(c.str());
    Tensor qkv = from_double(c.qkv_shape(), rng.normal_f32(shape_numel(c.qkv_shape()), c.scale));
    Tensor dy = from_double(c.out_shape(), rng.normal_f32(shape_numel(c.out_shape())));
    const std::vector<double> in = linattn_tc::rounded_values(qkv), g = linattn_tc::rounded_values(dy);
    const linattn_tc::Reference tc = linattn_tc::reference(c, in, g, linattn_tc::kBf16U);
    Tensor gqkv = qkv.to(Device::CUDA), gdy = dy.to(Device::CUDA);
    const Tensor out = kernels::linear_attention_forward(gqkv, c.heads, c.d);
    const Tensor dqkv = kernels::linear_attention_backward(gqkv, gdy, c.heads, c.d);
    linattn_tc::expect_within("gpu forward", out, tc.out, tc.out_bound);
    linattn_tc::expect_within("gpu backward", dqkv, tc.dqkv, tc.dqkv_bound);
    CHECK(linattn_tc::bitwise_equal(out, kernels::linear_attention_forward(gqkv, c.heads, c.d)));
    CHECK(linattn_tc::bitwise_equal(dqkv, kernels::linear_attention_backward(gqkv, gdy, c.heads, c.d)));
    // qkv stored in bf16 (the qkv conv's output under BF16) is read as it is: the same bits.
    const Tensor gqkv_bf16 = gqkv.to(DType::BF16);
    CHECK(linattn_tc::bitwise_equal(out, kernels::linear_attention_forward(gqkv_bf16, c.heads, c.d)));
    CHECK(linattn_tc::bitwise_equal(dqkv, kernels::linear_attention_backward(gqkv_bf16, gdy, c.heads, c.d)));
    // The output written in bf16 (for to_out under BF16): the fp32 output's bits, rounded.
    CHECK(bf16_bits(kernels::linear_attention_forward_bf16(gqkv_bf16, c.heads, c.d)) ==
          bf16_bits(out.to(DType::BF16)));
    const linattn_tc::Reference fp = linattn_tc::reference(c, in, g, 0.0);
    linattn_tc::expect_within("cpu forward", kernels::linear_attention_forward(qkv, c.heads, c.d), fp.out, fp.out_bound);
  }
}

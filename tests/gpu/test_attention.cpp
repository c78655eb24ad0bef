// GPU vs CPU for the flash-style softmax attention: forward and d_qkv over a
// sweep of batch, heads, dim_head and positions around the kernels' tiles
// (64 rows per block; key tiles of 64 positions, 32 at dim_head 128).
#include <catch2/catch.hpp>

#include <string>

#include "kernels/attention.h"
#include "tests/support/compare.h"

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

  Tensor out = kernels::attention_forward(gqkv, c.heads, c.d);
  REQUIRE(out.shape() == out_shape);
  // Online softmax (exp, running max) and dot products in another order than the CPU: 1e-4.
  expect_close("attention forward " + c.name(), out.to(Device::CPU),
               kernels::attention_forward(qkv, c.heads, c.d), 1e-4);

  Tensor dqkv = kernels::attention_backward(gqkv, gdy, c.heads, c.d);
  REQUIRE(dqkv.shape() == qkv_shape);
  // Recomputed softmax and sums over N in another order: 1e-4; at scale 10 the logits are ~100x
  // larger and their fp32 rounding reaches the gradient (1.2e-4 seen in the emulated test): 3e-4.
  expect_close("attention backward " + c.name(), dqkv.to(Device::CPU),
               kernels::attention_backward(qkv, dy, c.heads, c.d), c.scale > 1.0 ? 3e-4 : 1e-4);
}
}  // namespace

TEST_CASE("gpu: attention matches the cpu over the sweep", "[gpu][attention][sweep]") {
  DD_TEST_RANDOM(rng);
  for (int64_t B : {1, 2})
    for (int64_t heads : {1, 4})
      for (int64_t d : {8, 32})
        for (int64_t N : {1, 7, 16, 49, 65, 300}) {
          const Case c{B, N, heads, d};
          SECTION(c.name()) { check_case(c, rng, {B, N}); }
        }
}

TEST_CASE("gpu: attention on other head sizes, spatial shapes and large logits", "[gpu][attention]") {
  DD_TEST_RANDOM(rng);
  SECTION("4x4 and 7x7 spatial, the U-Net mid block") {
    check_case({2, 16, 4, 32}, rng, {2, 4, 4});
    check_case({3, 49, 4, 32}, rng, {3, 7, 7});
    check_case({1, 1, 4, 32}, rng, {1, 1, 1});  // 1x1 spatial
  }
  SECTION("dim_head 1, 5, 16, 20, 64, 128") {
    for (int64_t d : {1, 5, 16, 20, 64, 128}) check_case({2, 70, 2, d}, rng, {2, 70});
  }
  SECTION("N 1024 and 129") {
    check_case({1, 1024, 4, 32}, rng, {1, 32, 32});
    check_case({2, 129, 1, 32}, rng, {2, 129});
  }
  SECTION("logits ~ +-100: exp overflows without the running max") {
    check_case({2, 49, 4, 32, 10.0}, rng, {2, 49});
    check_case({1, 300, 1, 8, 10.0}, rng, {1, 300});
  }
}

TEST_CASE("gpu: attention is bitwise repeatable", "[gpu][attention]") {
  DD_TEST_RANDOM(rng);
  const int64_t B = 4, N = 81, heads = 4, d = 32;
  Tensor qkv = from_double({B, N, 3 * heads * d}, rng.normal_f32(B * N * 3 * heads * d)).to(Device::CUDA);
  Tensor dy = from_double({B, N, heads * d}, rng.normal_f32(B * N * heads * d)).to(Device::CUDA);
  CHECK(kernels::attention_forward(qkv, heads, d).to_vector() ==
        kernels::attention_forward(qkv, heads, d).to_vector());
  CHECK(kernels::attention_backward(qkv, dy, heads, d).to_vector() ==
        kernels::attention_backward(qkv, dy, heads, d).to_vector());
}

TEST_CASE("gpu: heads wider than 128 (cuBLAS path): ddpm-cifar10-32's one head of 256 at 16x16", "[gpu][attention]") {
  DD_TEST_RANDOM(rng);
  check_case({2, 256, 1, 256}, rng, {2, 16, 16});
  check_case({1, 70, 2, 129}, rng, {1, 70});
  check_case({2, 49, 1, 256, 10.0}, rng, {2, 49});
  const int64_t B = 2, N = 256, d = 256;
  Tensor qkv = from_double({B, N, 3 * d}, rng.normal_f32(B * N * 3 * d)).to(Device::CUDA);
  Tensor dy = from_double({B, N, d}, rng.normal_f32(B * N * d)).to(Device::CUDA);
  CHECK(kernels::attention_forward(qkv, 1, d).to_vector() == kernels::attention_forward(qkv, 1, d).to_vector());
  CHECK(kernels::attention_backward(qkv, dy, 1, d).to_vector() ==
        kernels::attention_backward(qkv, dy, 1, d).to_vector());
}

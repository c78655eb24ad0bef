#include <catch2/catch.hpp>

#include <string>

#include "autograd/elementwise.h"
#include "autograd/linear_attention.h"
#include "kernels/linear_attention.h"
#include "tests/reference/linear_attention.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Case {
  int64_t B, H, W, heads, dim_head;
  double scale;
};
}  // namespace

TEST_CASE("linear_attention forward matches the float64 reference", "[linear_attention]") {
  DD_TEST_RANDOM(rng);
  // N = 1, odd N (15, 49), heads 1 and 4, odd dim_head, the seed's 4x32, large inputs (max subtraction).
  for (Case c : {Case{1, 1, 1, 1, 3, 1.0}, Case{2, 3, 5, 2, 5, 1.0}, Case{3, 7, 7, 4, 32, 1.0},
                 Case{2, 4, 4, 4, 32, 10.0}, Case{1, 16, 16, 4, 32, 1.0}}) {
    const int64_t N = c.H * c.W, C = 3 * c.heads * c.dim_head;
    std::vector<double> qkv = rng.normal_f32(c.B * N * C, c.scale);
    Tensor y = kernels::linear_attention_forward(from_double({c.B, c.H, c.W, C}, qkv), c.heads, c.dim_head);
    REQUIRE(y.shape() == Shape{c.B, c.H, c.W, c.heads * c.dim_head});
    INFO("B " << c.B << " N " << N << " heads " << c.heads << " dim_head " << c.dim_head << " scale " << c.scale);
    // Two softmaxes and two small GEMMs in fp32 vs float64: 1e-4 of the output's scale.
    expect_close("linear_attention forward", y, ref::linear_attention(qkv, c.B, N, c.heads, c.dim_head), 1e-4);
  }
}

TEST_CASE("linear_attention gradcheck on tiny shapes", "[linear_attention]") {
  DD_TEST_RANDOM(rng);
  for (Case c : {Case{2, 2, 3, 2, 3, 1.0}, Case{1, 1, 5, 1, 4, 2.0}, Case{2, 1, 1, 2, 3, 1.0}}) {
    const int64_t N = c.H * c.W, C = 3 * c.heads * c.dim_head;
    std::vector<double> qkv = rng.normal_f32(c.B * N * C, c.scale);
    std::vector<double> dy = rng.normal_f32(c.B * N * c.heads * c.dim_head);
    Tensor dq = kernels::linear_attention_backward(from_double({c.B, c.H, c.W, C}, qkv),
                                                   from_double({c.B, c.H, c.W, c.heads * c.dim_head}, dy),
                                                   c.heads, c.dim_head);
    INFO("B " << c.B << " N " << N << " heads " << c.heads << " dim_head " << c.dim_head);
    // fp32 backward through both softmaxes vs float64 central differences: 1e-4.
    gradcheck("linear_attention", [&](const auto& in) { return ref::linear_attention(in[0], c.B, N, c.heads, c.dim_head); },
              {qkv}, dy, {dq.to_vector()}, 1e-4);
  }
}

TEST_CASE("linear_attention errors name the op and shapes", "[linear_attention]") {
  Tensor qkv = Tensor::zeros({1, 2, 2, 10});
  REQUIRE_THROWS_WITH(kernels::linear_attention_forward(qkv, 2, 2),
                      Catch::Contains("linear_attention") && Catch::Contains("[1,2,2,10]"));
}

TEST_CASE("linear_attention autograd records the kernel backward", "[linear_attention][autograd]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{2, 3, 3, 3 * 2 * 4};
  ag::Var qkv(from_double(shape, rng.normal_f32(shape_numel(shape))), true);
  ag::Var r(from_double({2, 3, 3, 8}, rng.normal_f32(2 * 9 * 8)));
  ag::Tape::current().clear();
  ag::Var y = ag::linear_attention(qkv, 2, 4);
  ag::Tape::current().backward(ag::sum(ag::mul(y, r)));
  Tensor expect = kernels::linear_attention_backward(qkv.value(), r.value(), 2, 4);
  CHECK(qkv.grad().to_vector() == expect.to_vector());
  ag::Tape::current().clear();
}

#include <catch2/catch.hpp>

#include "autograd/concat.h"
#include "autograd/elementwise.h"
#include "kernels/concat.h"
#include "tests/reference/concat.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};

Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}

int64_t rows_of(const Shape& lead) { return shape_numel(lead); }

std::vector<double> flatten(const std::vector<std::vector<double>>& parts) {
  std::vector<double> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}
}  // namespace

TEST_CASE("concat: forward along the last dim against float64", "[concat]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    Shape lead;  // every dim but the last
    std::vector<int64_t> widths;
  };
  for (const Case& k : {Case{{}, {5, 3}}, Case{{4}, {1, 7, 2}}, Case{{2, 3, 5}, {13, 1}},
                        Case{{3, 7, 1}, {5}}, Case{{2, 16, 16}, {64, 32}}}) {
    std::vector<Tensor> xs;
    std::vector<std::vector<double>> vals;
    std::string shapes;
    for (int64_t w : k.widths) {
      Shape s = k.lead;
      s.push_back(w);
      vals.push_back(rng.normal_f32(shape_numel(s)));
      xs.push_back(from_double(s, vals.back()));
      shapes += shape_str(s) + " ";
    }
    INFO("inputs " << shapes);
    Tensor y = kernels::concat(xs);
    int64_t total = 0;
    for (int64_t w : k.widths) total += w;
    Shape ys = k.lead;
    ys.push_back(total);
    REQUIRE(y.shape() == ys);
    // Copies of float inputs: exact.
    expect_close("concat", y, ref::concat_last(vals, k.widths, rows_of(k.lead)), 0.0);

    std::vector<Tensor> back = kernels::split(y, k.widths);
    REQUIRE(back.size() == xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) expect_close("split part " + std::to_string(i), back[i], vals[i], 0.0);
  }
}

TEST_CASE("chunk: n equal parts of the last dim against float64", "[concat]") {
  DD_TEST_RANDOM(rng);
  struct Case {
    Shape shape;
    int64_t n;
  };
  // [B, 2C] time-MLP scale/shift, [B, H, W, 3*hidden] qkv, odd sizes.
  for (const Case& k : {Case{{6}, 3}, Case{{5, 14}, 2}, Case{{3, 5, 7, 9}, 3}, Case{{2, 1, 13, 4}, 4},
                        Case{{2, 16, 16, 384}, 3}, Case{{4, 7}, 1}}) {
    INFO("x " << shape_str(k.shape) << " n " << k.n);
    std::vector<double> x = rng.normal_f32(shape_numel(k.shape));
    std::vector<Tensor> parts = kernels::chunk(from_double(k.shape, x), k.n);
    const int64_t width = k.shape.back();
    const auto expect = ref::chunk_last(x, shape_numel(k.shape) / width, width, k.n);
    REQUIRE(static_cast<int64_t>(parts.size()) == k.n);
    for (int64_t i = 0; i < k.n; ++i) {
      REQUIRE(parts[i].shape() == with_last(k.shape, width / k.n));
      // Copies: exact.
      expect_close("chunk " + std::to_string(i), parts[i], expect[static_cast<std::size_t>(i)], 0.0);
    }
  }
}

TEST_CASE("concat and chunk: backward gradchecks, with chunks that get no gradient", "[concat]") {
  DD_TEST_RANDOM(rng);
  const Shape lead{2, 3};
  const std::vector<int64_t> widths{2, 1, 3};
  std::vector<std::vector<double>> in;
  for (int64_t w : widths) in.push_back(rng.normal_f32(rows_of(lead) * w));
  std::vector<double> dy = rng.normal_f32(rows_of(lead) * 6);
  std::vector<Tensor> parts = kernels::split(from_double(with_last({2, 3, 1}, 6), dy), widths);
  // Copies: the analytic gradient is exact; 1e-6 covers the finite difference's rounding.
  gradcheck(
      "concat", [&](const auto& x) { return ref::concat_last(x, widths, rows_of(lead)); }, in, dy,
      {parts[0].to_vector(), parts[1].to_vector(), parts[2].to_vector()}, 1e-6);

  const Shape xs{2, 3, 6};
  std::vector<double> x = rng.normal_f32(shape_numel(xs));
  for (int missing = -1; missing < 3; ++missing) {
    INFO("chunk " << missing << " receives no gradient");
    std::vector<std::vector<double>> g;
    std::vector<Tensor> dys;
    for (int i = 0; i < 3; ++i) {
      g.push_back(i == missing ? std::vector<double>(12, 0.0) : rng.normal_f32(12));
      dys.push_back(i == missing ? Tensor() : from_double({2, 3, 2}, g.back()));
    }
    Tensor dx = kernels::chunk_backward(dys, xs);
    REQUIRE(dx.shape() == xs);
    gradcheck(
        "chunk", [&](const auto& v) { return flatten(ref::chunk_last(v[0], 6, 6, 3)); }, {x}, flatten(g),
        {dx.to_vector()}, 1e-6);
  }
}

TEST_CASE("concat and chunk: errors name the op and every shape", "[concat]") {
  Tensor a = Tensor::zeros({2, 3, 4}), b = Tensor::zeros({2, 4, 4}), c = Tensor::zeros({2, 3, 1});
  REQUIRE_THROWS_WITH(kernels::concat({a, c, b}), Catch::Contains("concat") && Catch::Contains("[2,3,4]") &&
                                                      Catch::Contains("[2,3,1]") && Catch::Contains("[2,4,4]"));
  REQUIRE_THROWS_WITH(kernels::concat({a, Tensor::zeros({2, 3})}),
                      Catch::Contains("concat") && Catch::Contains("[2,3]"));
  REQUIRE_THROWS_WITH(kernels::concat({}), Catch::Contains("concat"));
  REQUIRE_THROWS_WITH(kernels::chunk(Tensor::zeros({5, 7}), 2),
                      Catch::Contains("chunk") && Catch::Contains("[5,7]") && Catch::Contains("2"));
  REQUIRE_THROWS_WITH(kernels::split(a, {1, 2}), Catch::Contains("split") && Catch::Contains("[2,3,4]"));
  REQUIRE_THROWS_WITH(kernels::chunk_backward({Tensor::zeros({2, 2}), Tensor()}, {2, 6}),
                      Catch::Contains("chunk_backward") && Catch::Contains("[2,2]") && Catch::Contains("[2,6]"));
  REQUIRE_THROWS_WITH(kernels::chunk_backward({Tensor(), Tensor()}, {2, 6}), Catch::Contains("chunk_backward"));
}

TEST_CASE("concat and chunk: autograd gradients equal the kernel backward", "[concat]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  // Skip connection: cat of [B,H,W,C1] (needs grad) and [B,H,W,C2] (a constant).
  ag::Var a(from_double({2, 3, 5, 4}, rng.normal_f32(120)), true);
  ag::Var skip(from_double({2, 3, 5, 3}, rng.normal_f32(90)));
  Tensor r = from_double({2, 3, 5, 7}, rng.normal_f32(210));
  ag::Tape::current().backward(ag::sum(ag::mul(ag::concat({a, skip}), ag::Var(r))));
  // d loss / d y is r exactly: the same kernel gives the same bits.
  expect_close("a.grad", a.grad(), kernels::split(r, {4, 3})[0], 0.0);
  CHECK_FALSE(skip.has_grad());
  ag::Tape::current().clear();

  // q, k, v split where k is unused and v is used twice: dx has zeros in k's slice.
  ag::Var qkv(from_double({2, 4, 9}, rng.normal_f32(72)), true);
  std::vector<ag::Var> parts = ag::chunk(qkv, 3);
  REQUIRE(parts.size() == 3);
  Tensor rq = from_double({2, 4, 3}, rng.normal_f32(24)), rv = from_double({2, 4, 3}, rng.normal_f32(24));
  ag::Var loss = ag::add(ag::sum(ag::mul(parts[0], ag::Var(rq))),
                         ag::add(ag::sum(ag::mul(parts[2], ag::Var(rv))), ag::sum(parts[2])));
  ag::Tape::current().backward(loss);
  std::vector<double> expect(72);
  const auto vq = to_double(rq), vv = to_double(rv);
  for (int64_t row = 0; row < 8; ++row)
    for (int64_t c = 0; c < 3; ++c) {
      expect[static_cast<std::size_t>(row * 9 + c)] = vq[static_cast<std::size_t>(row * 3 + c)];
      expect[static_cast<std::size_t>(row * 9 + 3 + c)] = 0.0;
      expect[static_cast<std::size_t>(row * 9 + 6 + c)] = vv[static_cast<std::size_t>(row * 3 + c)] + 1.0;
    }
  // v's gradient is one float add of rv and 1: 1e-6 of the scale.
  expect_close("qkv.grad", qkv.grad(), expect, 1e-6);
  CHECK_FALSE(parts[1].has_grad());
}

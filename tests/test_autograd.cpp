#include <catch2/catch.hpp>

#include <cmath>
#include <memory>

#include "autograd/activation.h"
#include "autograd/elementwise.h"
#include "tests/reference/activation.h"
#include "tests/reference/elementwise.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
struct TapeGuard {
  ~TapeGuard() { ag::Tape::current().clear(); }
};
}  // namespace

TEST_CASE("autograd: a composite expression matches finite differences of its float64 reference",
          "[autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  const Shape shape{2, 3, 5};
  const int64_t n = shape_numel(shape);
  std::vector<double> a = rng.normal_f32(n), b = rng.normal_f32(n), r = rng.normal_f32(n);
  ag::Var va(from_double(shape, a), true), vb(from_double(shape, b), true), vr(from_double(shape, r));
  // L = sum(r * (silu(a * b) + gelu(2a + 1) - b))
  ag::Var y = ag::sub(ag::add(ag::silu(ag::mul(va, vb)), ag::gelu(ag::affine(va, 2.0f, 1.0f))), vb);
  ag::Var loss = ag::sum(ag::mul(y, vr));
  ag::Tape::current().backward(loss);

  auto reference = [&](const std::vector<std::vector<double>>& in) {
    auto y_ref = ref::sub(ref::add(ref::silu(ref::mul(in[0], in[1])), ref::gelu(ref::affine(in[0], 2, 1))), in[1]);
    return std::vector<double>{[&] {
      double s = 0;
      for (std::size_t i = 0; i < y_ref.size(); ++i) s += y_ref[i] * r[i];
      return s;
    }()};
  };
  // The loss is a sum of 30 terms that partly cancel: judge it at the scale of sum |term|.
  double magnitude = 0;
  for (double v : vr.value().to_vector()) magnitude += std::fabs(v) * 3.0;
  CHECK(loss.value().item() == Approx(reference({a, b})[0]).margin(1e-6 * magnitude));
  // fp32 chain of pointwise ops vs float64 finite differences: 1e-5.
  gradcheck("composite", reference, {a, b}, {1.0}, {va.grad().to_vector(), vb.grad().to_vector()}, 1e-5);
  CHECK_FALSE(vr.has_grad());  // constants get no gradient
}

TEST_CASE("autograd: a variable used twice accumulates both contributions without aliasing",
          "[autograd]") {
  TapeGuard guard;
  ag::Var p(Tensor::from_vector({3}, {1, 2, 3}), true), q(Tensor::from_vector({3}, {4, 5, 6}), true);
  ag::Var r1(Tensor::from_vector({3}, {1, 10, 100})), r2(Tensor::from_vector({3}, {-1, -2, -3}));
  // add() passes the same gradient tensor to p and q; p then receives a
  // second contribution, which must not leak into q's gradient.
  ag::Var loss = ag::add(ag::sum(ag::mul(ag::add(p, q), r1)), ag::sum(ag::mul(p, r2)));
  ag::Tape::current().backward(loss);
  CHECK(p.grad().to_vector() == std::vector<float>{0, 8, 97});
  CHECK(q.grad().to_vector() == std::vector<float>{1, 10, 100});

  ag::Tape::current().clear();
  ag::Var twice = ag::sum(ag::add(p, p));
  p.zero_grad();
  ag::Tape::current().backward(twice);
  CHECK(p.grad().to_vector() == std::vector<float>{2, 2, 2});
}

TEST_CASE("autograd: gradients accumulate across steps until zero_grad, the tape is reused",
          "[autograd]") {
  TapeGuard guard;
  ag::Var w(Tensor::from_vector({2}, {0.5f, -1.0f}), true);
  ag::Var x(Tensor::from_vector({2}, {3.0f, 4.0f}));
  std::size_t recorded = 0;
  for (int step = 0; step < 3; ++step) {
    ag::Tape::current().clear();
    ag::Var loss = ag::sum(ag::mul(w, x));
    if (step == 0) recorded = ag::Tape::current().size();
    CHECK(ag::Tape::current().size() == recorded);
    ag::Tape::current().backward(loss);
    CHECK(w.grad().to_vector() == std::vector<float>{3.0f * (step + 1), 4.0f * (step + 1)});
  }
  w.zero_grad();
  CHECK_FALSE(w.has_grad());
}

TEST_CASE("autograd: no-grad mode records nothing", "[autograd]") {
  TapeGuard guard;
  ag::Tape::current().clear();
  ag::Var w(Tensor::from_vector({2}, {1, 2}), true);
  {
    ag::NoGrad no_grad;
    ag::Var y = ag::silu(ag::mul(w, w));
    CHECK_FALSE(y.requires_grad());
    CHECK(ag::Tape::current().size() == 0);
    CHECK_FALSE(ag::grad_enabled());
  }
  CHECK(ag::grad_enabled());
  ag::Var y = ag::silu(w);
  CHECK(y.requires_grad());
  CHECK(ag::Tape::current().size() == 1);
}

TEST_CASE("autograd: backward needs a scalar loss that depends on a parameter", "[autograd]") {
  TapeGuard guard;
  ag::Var w(Tensor::from_vector({2}, {1, 2}), true);
  ag::Var y = ag::silu(w);
  REQUIRE_THROWS_WITH(ag::Tape::current().backward(y), Catch::Contains("scalar") && Catch::Contains("[2]"));
  ag::Var c(Tensor::scalar(1.0f));
  REQUIRE_THROWS_WITH(ag::Tape::current().backward(c), Catch::Contains("requires grad"));
}

// The tape frees each closure, and what it captured, as soon as it has run: by the time an earlier
// op's backward runs, every later op's closure (and its activations) is already gone.
TEST_CASE("autograd: backward frees each closure once it has run, and runs only once", "[autograd]") {
  TapeGuard guard;
  ag::Tape& tape = ag::Tape::current();
  tape.clear();
  ag::Var w(Tensor::from_vector({2}, {1, 2}), true);
  auto held_first = std::make_shared<int>(1), held_second = std::make_shared<int>(2);
  std::weak_ptr<int> first = held_first, second = held_second;
  bool second_freed_before_first_ran = false, first_ran = false;
  // Recorded first, so it runs last.
  tape.record([held = std::move(held_first), second, &second_freed_before_first_ran, &first_ran] {
    second_freed_before_first_ran = second.expired();
    first_ran = *held == 1;
  });
  tape.record([held = std::move(held_second)] { (void)held; });
  ag::Var loss = ag::sum(ag::mul(w, w));
  CHECK_FALSE(first.expired());
  tape.backward(loss);
  CHECK(first_ran);
  CHECK(second_freed_before_first_ran);
  CHECK(first.expired());
  CHECK(w.grad().to_vector() == std::vector<float>{2, 4});
  CHECK_THROWS_WITH(tape.backward(loss), Catch::Contains("already been run"));
  CHECK_THROWS_WITH(ag::sum(ag::mul(w, w)), Catch::Contains("clear() it before recording"));
  tape.clear();
  ag::Var again = ag::sum(ag::mul(w, w));
  w.zero_grad();
  tape.backward(again);
  CHECK(w.grad().to_vector() == std::vector<float>{2, 4});
}

TEST_CASE("autograd: the tape keeps an activation only while a backward still reads it", "[autograd]") {
  DD_TEST_RANDOM(rng);
  TapeGuard guard;
  ag::Tape::current().clear();
  const Shape shape{64, 1024};
  const int64_t n = shape_numel(shape);
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  const std::vector<double> xs = rng.normal_f32(n);
  ag::Var x(from_double(shape, xs), true);
  auto held = [start = host_mem::stats().in_use] { return host_mem::stats().in_use - start; };
  ag::Var loss;
  {
    ag::Var m = ag::mul(x, x);               // kept: silu's backward reads its input
    ag::Var s = ag::silu(m);                 // the rest are read by no backward
    ag::Var a = ag::add(s, x);
    ag::Var f = ag::affine(a, 2.0f, 1.0f);
    loss = ag::sum(f);
    CHECK(held() >= 4 * bytes);
  }
  // m and the scalar loss: the closures hold gradient slots, not the values of s, a and f.
  CHECK(held() >= bytes);
  CHECK(held() < 2 * bytes);
  ag::Tape::current().backward(loss);
  // d/dx sum(2 (silu(x^2) + x) + 1) = 2 (silu'(x^2) 2x + 1)
  std::vector<double> want(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double m = xs[i] * xs[i], sig = 1.0 / (1.0 + std::exp(-m));
    want[i] = 2.0 * (sig * (1.0 + m * (1.0 - sig)) * 2.0 * xs[i] + 1.0);
  }
  // fp32 products and the sigmoid's exp: a few ulps of each term.
  expect_close("dx", x.grad(), want, 1e-5);
}

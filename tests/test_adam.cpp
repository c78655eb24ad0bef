#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/adam.h"
#include "kernels/elementwise.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
// torch.optim.Adam by hand, in double, for one parameter.
struct HandAdam {
  double lr, b1, b2, eps, wd;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<double>& grad) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
    for (std::size_t i = 0; i < p.size(); ++i) {
      double g = grad[i] + wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      double mhat = m[i] / bc1, vhat = v[i] / bc2;
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
};
}  // namespace

TEST_CASE("adam: first step moves every weight by lr against the gradient sign", "[adam]") {
  // With m = (1-b1) g and v = (1-b2) g^2 after bias correction, the step is
  // lr * g / (|g| + eps) = lr * sign(g) (up to eps).
  Tensor p = Tensor::from_vector({4}, {1.0f, -2.0f, 0.5f, 3.0f});
  ag::Var w(p, true);
  w.accumulate_grad(Tensor::from_vector({4}, {0.3f, -7.0f, 1e-3f, 2.0f}));
  ag::Adam opt({w}, {0.01f, 0.9f, 0.999f, 1e-8f, 0.0f});
  opt.step();
  std::vector<float> got = w.value().to_vector();
  CHECK(got[0] == Approx(0.99).epsilon(1e-6));
  CHECK(got[1] == Approx(-1.99).epsilon(1e-6));
  CHECK(got[2] == Approx(0.49).epsilon(1e-5));
  CHECK(got[3] == Approx(2.99).epsilon(1e-6));
}

TEST_CASE("adam: matches hand-computed steps, with and without weight decay", "[adam]") {
  DD_TEST_RANDOM(rng);
  for (float wd : {0.0f, 0.05f}) {
    const int64_t n = 37;
    std::vector<double> p0 = rng.normal_f32(n);
    ag::Var w(from_double({n}, p0), true);
    kernels::AdamHyper h{2e-3f, 0.8f, 0.99f, 1e-6f, wd};
    ag::Adam opt({w}, h);
    HandAdam hand{h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, {}, {}};
    std::vector<double> p = std::vector<double>(p0.begin(), p0.end());
    for (int s = 0; s < 12; ++s) {
      std::vector<double> g = rng.normal_f32(n, 0.1 * (s + 1));
      w.zero_grad();
      w.accumulate_grad(from_double({n}, g));
      opt.step();
      hand.step(p, g);
    }
    CHECK(opt.param_steps()[0] == 12);
    // 12 fp32 steps vs double: the parameter change (~lr per step) carries
    // relative fp32 error ~1e-6; compare the displacement from the start.
    std::vector<float> got = w.value().to_vector();
    std::vector<float> moved(n);
    std::vector<double> want(n);
    for (int64_t i = 0; i < n; ++i) {
      moved[i] = static_cast<float>(got[i] - p0[i]);
      want[i] = p[i] - p0[i];
    }
    INFO("weight decay " << wd);
    expect_close("adam displacement", moved, want, 1e-4);
    // Moments match too.
    expect_close("adam exp_avg", opt.exp_avg()[0], hand.m, 1e-5);
    expect_close("adam exp_avg_sq", opt.exp_avg_sq()[0], hand.v, 1e-5);
  }
}

TEST_CASE("adam skips parameters without a gradient", "[adam]") {
  ag::Var a(Tensor::full({3}, 1.0f), true), b(Tensor::full({2}, 1.0f), true);
  ag::Adam opt({a, b}, {});
  a.accumulate_grad(Tensor::full({3}, 1.0f));
  opt.step();
  CHECK(b.value().to_vector() == std::vector<float>{1.0f, 1.0f});
  CHECK(opt.param_steps()[0] == 1);
  CHECK(opt.param_steps()[1] == 0);
  CHECK(a.value().to_vector()[0] < 1.0f);
}

TEST_CASE("clip_grad_norm scales all gradients to the max norm", "[adam]") {
  ag::Var a(Tensor::zeros({2}), true), b(Tensor::zeros({1}), true);
  a.accumulate_grad(Tensor::from_vector({2}, {3.0f, 0.0f}));
  b.accumulate_grad(Tensor::from_vector({1}, {4.0f}));
  double norm = ag::clip_grad_norm({a, b}, 1.0);
  CHECK(norm == Approx(5.0));
  CHECK(a.grad().to_vector()[0] == Approx(3.0 / 5.0).epsilon(1e-5));
  CHECK(b.grad().to_vector()[0] == Approx(4.0 / 5.0).epsilon(1e-5));
  // Under the limit nothing changes.
  double again = ag::clip_grad_norm({a, b}, 10.0);
  CHECK(again == Approx(1.0).epsilon(1e-5));
  CHECK(b.grad().to_vector()[0] == Approx(0.8).epsilon(1e-5));
}

// The trainer's clip: the factor stays where the gradients are and Adam applies it. It must give
// bitwise what clip_grad_norm (gradients scaled in place) followed by step() gives, whether the
// clip bites or not, and leave the gradients themselves untouched.
TEST_CASE("adam: step(clip_grad_norm_factor) is bitwise clip_grad_norm then step", "[adam][multi_tensor]") {
  DD_TEST_RANDOM(rng);
  for (double max_norm : {0.05, 1e6}) {  // clipping, and not
    const std::vector<Shape> shapes = {{3, 5}, {7}, {1}, {2, 3, 3, 4}};
    std::vector<ag::Var> a, b;
    std::vector<Tensor> grads;
    for (const Shape& s : shapes) {
      const Tensor w = from_double(s, rng.normal(shape_numel(s), 1.0));
      a.emplace_back(w.clone(), true);
      b.emplace_back(w.clone(), true);
      grads.push_back(from_double(s, rng.normal(shape_numel(s), 0.3)));
    }
    const kernels::AdamHyper h{1e-2f, 0.9f, 0.99f, 1e-8f, 0.01f};
    ag::Adam ref(a, h), fused(b, h);
    for (int step = 0; step < 3; ++step) {
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        a[i].accumulate_grad(grads[i].clone());
        b[i].accumulate_grad(grads[i]);  // shares the caller's storage: must not be scaled in place
      }
      const double norm = ag::clip_grad_norm(a, max_norm);
      ref.step();
      const Tensor factor = ag::clip_grad_norm_factor(b, max_norm);
      const std::vector<float> fv = factor.to_vector();
      CHECK(fv[1] == static_cast<float>(norm));
      CHECK(fv[0] == (max_norm / (norm + 1e-6) < 1.0 ? static_cast<float>(max_norm / (norm + 1e-6)) : 1.0f));
      fused.step(factor);
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        CHECK(b[i].value().to_vector() == a[i].value().to_vector());
        CHECK(fused.exp_avg()[i].to_vector() == ref.exp_avg()[i].to_vector());
        CHECK(fused.exp_avg_sq()[i].to_vector() == ref.exp_avg_sq()[i].to_vector());
        CHECK(b[i].grad().to_vector() == grads[i].to_vector());
      }
      ref.zero_grad();
      fused.zero_grad();
    }
  }
}

TEST_CASE("adam: clip_grad_norm_factor with no gradient is 1, and rejects a bad max_norm", "[adam]") {
  ag::Var a(Tensor::zeros({2}), true);
  CHECK(ag::clip_grad_norm_factor({a}, 1.0).to_vector() == std::vector<float>{1.0f, 0.0f});
  a.accumulate_grad(Tensor::from_vector({2}, {3.0f, 4.0f}));
  CHECK_THROWS_WITH(ag::clip_grad_norm_factor({a}, 0.0), Catch::Contains("max_norm must be positive"));
}

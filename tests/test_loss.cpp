#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>

#include "autograd/elementwise.h"
#include "autograd/loss.h"
#include "engine/error.h"
#include "kernels/loss.h"
#include "tests/reference/loss.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;
using kernels::LossType;

namespace {
const LossType kTypes[] = {LossType::L1, LossType::L2, LossType::Huber};

// The derivative of each mean loss in d = pred - target, written out in double.
double ref_grad(double d, LossType type, double n) {
  switch (type) {
    case LossType::L1: return (d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0)) / n;
    case LossType::L2: return 2.0 * d / n;
    case LossType::Huber: return (std::fabs(d) < 1.0 ? d : (d > 0 ? 1.0 : -1.0)) / n;
  }
  return 0.0;
}
}  // namespace

TEST_CASE("loss forward matches float64 for l1, l2 and huber", "[loss]") {
  DD_TEST_RANDOM(rng);
  for (LossType type : kTypes)
    for (Shape shape : {Shape{1}, Shape{7}, Shape{2, 3, 5, 3}, Shape{4, 33, 17, 3}, Shape{8, 32, 32, 3}}) {
      SECTION(std::string(kernels::loss_type_name(type)) + " " + shape_str(shape)) {
        const int64_t n = shape_numel(shape);
        // Scale 1.5 puts differences on both sides of Huber's |d| = 1 switch.
        std::vector<double> p = rng.normal_f32(n, 1.5), t = rng.normal_f32(n, 1.0);
        Tensor loss = kernels::loss_forward(from_double(shape, p), from_double(shape, t), type);
        REQUIRE(loss.shape() == Shape{});
        // d is rounded to fp32 (as torch does), the sum is in double, the mean
        // rounded once: ~1e-7; 1e-6.
        expect_close("loss", loss, {ref::loss(p, t, type)}, 1e-6);

        // The backward is elementwise: compare it with the derivative on every shape.
        const float dloss = 0.75f;
        Tensor dp = kernels::loss_backward(from_double(shape, p), from_double(shape, t), type, dloss);
        REQUIRE(dp.shape() == shape);
        std::vector<double> expect(p.size());
        for (std::size_t i = 0; i < p.size(); ++i)
          expect[i] = dloss * ref_grad(static_cast<double>(static_cast<float>(p[i] - t[i])), type, n);
        // A product of two or three fp32 factors: 1e-6.
        expect_close("dpred", dp, expect, 1e-6);
      }
    }
}

TEST_CASE("loss backward: gradcheck of pred and target", "[loss]") {
  DD_TEST_RANDOM(rng);
  for (LossType type : kTypes)
    for (Shape shape : {Shape{1}, Shape{5}, Shape{2, 3, 1, 4}}) {
      SECTION(std::string("gradcheck ") + kernels::loss_type_name(type) + " " + shape_str(shape)) {
        const int64_t n = shape_numel(shape);
        std::vector<double> p = rng.normal_f32(n, 1.5), t = rng.normal_f32(n, 1.0);
        const float dloss = 1.25f;
        Tensor dp = kernels::loss_backward(from_double(shape, p), from_double(shape, t), type, dloss);
        std::vector<float> dt = dp.to_vector();
        for (float& v : dt) v = -v;  // d/dtarget = -d/dpred
        auto f = [type](const std::vector<std::vector<double>>& in) {
          return std::vector<double>{ref::loss(in[0], in[1], type)};
        };
        // fp32 products of exact-ish factors vs central differences: 1e-5.
        gradcheck(std::string("loss ") + kernels::loss_type_name(type), f, {p, t}, {dloss},
                  {dp.to_vector(), dt}, 1e-5);
      }
    }
}

TEST_CASE("loss backward at d = 0 is 0 (sign(0) = 0, as PyTorch)", "[loss]") {
  Tensor p = Tensor::from_vector({4}, {1.0f, -2.0f, 0.5f, 3.0f});
  Tensor t = Tensor::from_vector({4}, {1.0f, -1.0f, 0.5f, 0.0f});
  CHECK(kernels::loss_backward(p, t, LossType::L1, 1.0f).to_vector() ==
        std::vector<float>{0.0f, -0.25f, 0.0f, 0.25f});
  CHECK(kernels::loss_backward(p, t, LossType::L2, 1.0f).to_vector() ==
        std::vector<float>{0.0f, -0.5f, 0.0f, 1.5f});
  // Huber at |d| = 1 takes the linear branch (smooth_l1_loss_backward's x <= -beta).
  CHECK(kernels::loss_backward(p, t, LossType::Huber, 1.0f).to_vector() ==
        std::vector<float>{0.0f, -0.25f, 0.0f, 0.25f});
  CHECK(kernels::loss_forward(p, t, LossType::Huber).item() == Approx((0.5 + 2.5) / 4));
}

TEST_CASE("loss type parser and errors", "[loss]") {
  CHECK(kernels::parse_loss_type("l1") == LossType::L1);
  CHECK(kernels::parse_loss_type("l2") == LossType::L2);
  CHECK(kernels::parse_loss_type("huber") == LossType::Huber);
  for (LossType type : kTypes) CHECK(kernels::parse_loss_type(kernels::loss_type_name(type)) == type);
  REQUIRE_THROWS_WITH(kernels::parse_loss_type("mse"), Catch::Contains("'mse'") && Catch::Contains("huber"));
  REQUIRE_THROWS_AS(kernels::parse_loss_type(""), dd::Error);

  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2});
  REQUIRE_THROWS_WITH(kernels::loss_forward(a, b, LossType::L2),
                      Catch::Contains("loss") && Catch::Contains("[2,3]") && Catch::Contains("[3,2]"));
  REQUIRE_THROWS_WITH(kernels::loss_backward(a, b, LossType::Huber, 1.0f), Catch::Contains("loss_backward") &&
                                                                               Catch::Contains("[2,3]") &&
                                                                               Catch::Contains("[3,2]"));
  REQUIRE_THROWS_WITH(kernels::loss_forward(Tensor::zeros({0, 3}), Tensor::zeros({0, 3}), LossType::L1),
                      Catch::Contains("empty") && Catch::Contains("[0,3]"));
}

TEST_CASE("loss is bitwise independent of the thread count", "[loss]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{16, 32, 32, 3};
  Tensor p = from_double(shape, rng.normal_f32(shape_numel(shape))),
         t = from_double(shape, rng.normal_f32(shape_numel(shape)));
  const int threads = omp_get_max_threads();
  for (LossType type : kTypes) {
    const float first = kernels::loss_forward(p, t, type).item();
    for (int n : {1, 3}) {
      omp_set_num_threads(n);
      const float again = kernels::loss_forward(p, t, type).item();
      omp_set_num_threads(threads);
      CHECK(again == first);
    }
  }
}

TEST_CASE("loss autograd: pred and target grads equal the kernel backward", "[loss]") {
  DD_TEST_RANDOM(rng);
  struct TapeGuard {
    ~TapeGuard() { ag::Tape::current().clear(); }
  } guard;
  const Shape shape{2, 4, 4, 3};
  for (LossType type : kTypes) {
    ag::Tape::current().clear();
    Tensor pt = from_double(shape, rng.normal_f32(shape_numel(shape), 1.5));
    Tensor tt = from_double(shape, rng.normal_f32(shape_numel(shape)));
    ag::Var pred(pt, true), target(tt, true), frozen(tt);
    // 3 * loss: the closure must scale by the incoming gradient.
    ag::Var loss = ag::affine(ag::loss(pred, target, type), 3.0f, 0.0f);
    REQUIRE(loss.shape() == Shape{});
    ag::Tape::current().backward(loss);
    const std::vector<float> dp = kernels::loss_backward(pt, tt, type, 3.0f).to_vector();
    std::vector<float> dt = dp;
    for (float& v : dt) v = -v;
    CHECK(pred.grad().to_vector() == dp);
    CHECK(target.grad().to_vector() == dt);

    ag::Tape::current().clear();
    ag::Var pred2(pt, true);
    ag::Tape::current().backward(ag::loss(pred2, frozen, type));
    CHECK(pred2.grad().to_vector() == kernels::loss_backward(pt, tt, type, 1.0f).to_vector());
    CHECK_FALSE(frozen.has_grad());
  }
}

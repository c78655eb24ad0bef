// The training objectives and loss weightings of lucidrains' GaussianDiffusion (pred_noise, pred_x0,
// pred_v; min-SNR-gamma; offset noise) against float64 evaluations of its formulas, and the weighted
// loss kernel they use (CPU against float64, with its gradient).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "autograd/loss.h"
#include "engine/rng.h"
#include "kernels/loss.h"
#include "models/diffusion.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
// The model's output is a fixed function of its input: out = 0.5 tanh(x) + 0.01 t.
struct FnModel : models::Denoiser {
  ag::Var forward(const ag::Var& x, const Tensor& t, const ag::Var&) override {
    const std::vector<float> xv = x.value().to_vector(), tv = t.to_vector();
    const int64_t per = x.value().numel() / x.value().dim(0);
    std::vector<float> out(xv.size());
    for (std::size_t i = 0; i < xv.size(); ++i)
      out[i] = static_cast<float>(0.5 * std::tanh(double(xv[i])) + 0.01 * tv[i / static_cast<std::size_t>(per)]);
    return ag::Var(Tensor::from_vector(x.value().shape(), out));
  }
  bool self_condition() const override { return false; }
  int channels() const override { return 2; }
};

double huber(double d) { return std::fabs(d) < 1.0 ? 0.5 * d * d : std::fabs(d) - 0.5; }
}  // namespace

TEST_CASE("weighted loss: float64 reference, and its gradient by finite differences", "[loss][objectives]") {
  DD_TEST_RANDOM(rng);
  const Shape s{3, 2, 2, 1};
  const std::vector<double> p = rng.uniform(12, -2.0, 2.0), t = rng.uniform(12, -2.0, 2.0), w = {0.5, 2.0, 1.25};
  const Tensor pt = from_double(s, p), tt = from_double(s, t), wt = from_double({3}, w);
  for (auto type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
    double want = 0.0;
    for (int i = 0; i < 12; ++i) {
      const double d = double(float(p[i]) - float(t[i]));
      const double term = type == kernels::LossType::L1 ? std::fabs(d) : type == kernels::LossType::L2 ? d * d : huber(d);
      want += term * w[static_cast<std::size_t>(i / 4)];
    }
    want /= 12.0;
    // A double sum rounded once to float: 1e-6 relative.
    CHECK(std::fabs(kernels::loss_forward_weighted(pt, tt, type, wt).item() - want) <= 1e-6 * std::max(1.0, want));
    // The gradient: w[b] times the unweighted one, a float product of its own.
    const std::vector<float> g = kernels::loss_backward_weighted(pt, tt, type, wt, Tensor::full({}, 1.0f)).to_vector();
    const std::vector<float> g1 = kernels::loss_backward(pt, tt, type, 1.0f).to_vector();
    for (int i = 0; i < 12; ++i) CHECK(g[static_cast<std::size_t>(i)] == g1[static_cast<std::size_t>(i)] * float(w[static_cast<std::size_t>(i / 4)]));
  }
  // Through autograd: the tape's gradient is the kernel's.
  ag::Var pv(pt, true);
  ag::Var y = ag::weighted_loss(pv, ag::Var(tt), kernels::LossType::L2, wt);
  ag::Tape::current().backward(y);
  CHECK(pv.grad().to_vector() ==
        kernels::loss_backward_weighted(pt, tt, kernels::LossType::L2, wt, Tensor::full({}, 1.0f)).to_vector());
  ag::Tape::current().clear();
  REQUIRE_THROWS_WITH(kernels::loss_forward_weighted(pt, tt, kernels::LossType::L2, from_double({2}, {1, 1})),
                      Catch::Contains("weights") && Catch::Contains("[B] = [3]"));
}

TEST_CASE("objectives: targets, min-SNR weights and offset noise follow lucidrains' formulas", "[diffusion][objectives]") {
  DD_TEST_RANDOM(rng);
  const models::Schedule sch = models::Schedule::make(models::BetaSchedule::Cosine, 50);
  const Shape s{4, 3, 3, 2};
  const Tensor x0 = from_double(s, rng.uniform(72, -1.0, 1.0));
  for (auto objective : {models::Objective::PredNoise, models::Objective::PredX0, models::Objective::PredV}) {
    for (double gamma : {0.0, 5.0}) {
      for (double offset : {0.0, 0.3}) {
        INFO(models::objective_name(objective) << " gamma " << gamma << " offset " << offset);
        models::LossOptions lo;
        lo.min_snr_gamma = gamma;
        lo.offset_noise = offset;
        const models::GaussianDiffusion diff(sch, kernels::LossType::Huber, objective, lo);
        FnModel model;
        Generator gen(17, 5), replay(17, 5);
        models::LossDraw draw;
        const double loss = diff.p_losses(model, x0, gen, &draw).value().item();
        // The same draws by hand: timesteps (B blocks), noise, then the offset noise [B, C].
        replay.skip(4);
        std::vector<float> noise = randn(s, 17, replay.reserve(72)).to_vector();
        if (offset > 0) {
          const std::vector<float> n = replay.randn({4, 2}).to_vector();
          for (int i = 0; i < 72; ++i) noise[i] = noise[i] + float(offset) * n[(i / 18) * 2 + i % 2];
        }
        CHECK(replay.offset() == gen.offset());
        const std::vector<float> xv = x0.to_vector();
        double want = 0.0;
        for (int i = 0; i < 72; ++i) {
          const int t = static_cast<int>(draw.t[static_cast<std::size_t>(i / 18)]);
          const double a = sch.alphas_cumprod[static_cast<std::size_t>(t)], snr = a / (1.0 - a);
          const double xt = std::sqrt(a) * xv[i] + std::sqrt(1.0 - a) * noise[i];
          const double out = 0.5 * std::tanh(xt) + 0.01 * t;
          const double target = objective == models::Objective::PredNoise ? noise[i]
                                : objective == models::Objective::PredX0  ? xv[i]
                                                                          : std::sqrt(a) * noise[i] - std::sqrt(1.0 - a) * xv[i];
          const double clipped = gamma > 0 ? std::min(snr, gamma) : snr;
          const double w = objective == models::Objective::PredNoise ? clipped / snr
                           : objective == models::Objective::PredX0  ? clipped
                                                                     : clipped / (snr + 1.0);
          CHECK(std::fabs(diff.loss_weight(t) - w) <= 1e-12 * std::max(1.0, w));
          want += w * huber(out - target);
        }
        want /= 72.0;
        // float32 x_t, output and target against float64, through weights up to snr (pred_x0, no
        // clipping: ~1e3 at small t): 1e-4 relative.
        CHECK(std::fabs(loss - want) <= 1e-4 * std::max(1.0, std::fabs(want)));
      }
    }
  }
}

TEST_CASE("objectives: the samplers' eps conversion inverts the training targets", "[diffusion][objectives]") {
  DD_TEST_RANDOM(rng);
  const models::Schedule sch = models::Schedule::make(models::BetaSchedule::Linear, 100);
  const Shape s{2, 2, 2, 2};
  const std::vector<double> x0 = rng.uniform(16, -1, 1), eps = rng.uniform(16, -1, 1);
  for (auto objective : {models::Objective::PredX0, models::Objective::PredV}) {
    const models::GaussianDiffusion diff(sch, kernels::LossType::L2, objective);
    for (int t : {1, 40, 99}) {
      const double a = sch.alphas_cumprod[static_cast<std::size_t>(t)];
      std::vector<double> x(16), out(16);
      for (int i = 0; i < 16; ++i) {
        x[i] = std::sqrt(a) * x0[i] + std::sqrt(1 - a) * eps[i];
        out[i] = objective == models::Objective::PredX0 ? x0[i] : std::sqrt(a) * eps[i] - std::sqrt(1 - a) * x0[i];
      }
      // A model that outputs exactly the target: the conversion must give back eps.
      struct Exact : models::Denoiser {
        Tensor o;
        ag::Var forward(const ag::Var&, const Tensor&, const ag::Var&) override { return ag::Var(o); }
        bool self_condition() const override { return false; }
        int channels() const override { return 2; }
      } m;
      m.o = from_double(s, out);
      const Tensor got = diff.eps_prediction(m, from_double(s, x), Tensor::full({2}, float(t)), Tensor());
      // float32 inputs through 1 / sqrt(1 - abar) (up to 100 at t = 1): 1e-4.
      expect_close("eps t=" + std::to_string(t), got, eps, 1e-4);
    }
  }
}

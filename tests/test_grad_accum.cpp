// Gradient accumulation (--grad-accum, apps/ddpm/train_step.h): N micro-batches in N backward passes
// give the step that one tape over the same N micro-batches and the mean of their losses gives.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "apps/ddpm/train_step.h"
#include "autograd/adam.h"
#include "autograd/elementwise.h"
#include "autograd/var.h"
#include "engine/rng.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
struct Run {
  std::unique_ptr<models::Unet> model;
  std::unique_ptr<ag::Adam> adam;
  Generator gen{11};
  explicit Run(const models::UnetConfig& cfg) {
    Generator init(3);
    model = std::make_unique<models::Unet>(cfg, init);
    model->params().zero_grad();
    kernels::AdamHyper h;
    h.lr = 1e-3f;
    adam = std::make_unique<ag::Adam>(model->params().vars(), h, model->params().param_arena(),
                                      model->params().grad_arena());
  }
};
}  // namespace

TEST_CASE("grad accumulation: N backward passes give the one-tape step over the same micro-batches",
          "[train][accum]") {
  DD_TEST_RANDOM(rng);
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 50));
  const Shape shape{3, 8, 8, 1};
  std::vector<Tensor> batches;
  for (int k = 0; k < 3; ++k) batches.push_back(from_double(shape, rng.uniform(shape_numel(shape), -1.0, 1.0)));
  for (double clip : {0.0, 0.05}) {
    INFO("grad clip " << clip);
    Run a(cfg), b(cfg);
    ddpm::TrainStepParts parts;
    parts.model = a.model.get();
    parts.params = &a.model->params();
    parts.diffusion = &diffusion;
    parts.gen = &a.gen;
    parts.adam = a.adam.get();
    parts.grad_clip = clip;
    ddpm::TrainStep step(parts, Device::CPU, false);
    const float loss_a = step.run(batches).item();

    // The reference: one tape over the three micro-batches, the loss their mean (each scaled by
    // 1/3 and summed, the same float operations as the accumulation's seeds).
    std::vector<ag::Var> losses;
    for (const Tensor& x : batches) losses.push_back(ag::affine(diffusion.p_losses(*b.model, x, b.gen), 1.0f / 3.0f, 0.0f));
    const ag::Var total = ag::add(ag::add(losses[0], losses[1]), losses[2]);
    ag::Tape::current().backward(total);
    if (clip > 0)
      b.adam->step(ag::clip_grad_norm_factor(b.adam->params(), clip, b.model->params().grad_arena()));
    else
      b.adam->step();
    ag::Tape::current().clear();

    // Every parameter takes one gradient contribution per micro-batch, and float addition of two
    // terms commutes, so the tape's reverse order (c3 + c2 + c1 per parameter) and the accumulation's
    // (c1 + c2 + c3) agree only up to the association of three terms: an ulp of the largest term,
    // which Adam's first step (lr * g / (|g| + eps)) turns into ~1e-7 of lr, except where g is
    // itself rounding noise: the bias of a conv that a GroupNorm follows has an exact gradient of 0,
    // its computed one is ~1e-9, and eps 1e-8 turns any reassociation of that noise into a change of
    // order lr (seed 12701733142317364429 showed 1.2e-3 lr). Those parameters (gradient below 1e-5
    // of the largest in the reference, which keeps its gradients) are left out.
    const std::vector<float> gb = b.model->params().grad_arena().to_vector();
    double gscale = 0;
    for (float v : gb) gscale = std::max(gscale, std::fabs(static_cast<double>(v)));
    const std::vector<float> pa = a.model->params().param_arena().to_vector(),
                             pb = b.model->params().param_arena().to_vector();
    int64_t compared = 0;
    for (size_t i = 0; i < pb.size(); ++i) {
      if (std::fabs(gb[i]) < 1e-5 * gscale) continue;
      ++compared;
      if (std::fabs(pa[i] - pb[i]) > 1e-6 * std::max(1.0f, std::fabs(pb[i]))) {
        FAIL_CHECK("parameter " << i << ": " << pa[i] << " vs " << pb[i] << " (gradient " << gb[i] << ")");
        break;
      }
    }
    CHECK(compared > static_cast<int64_t>(pb.size()) / 2);
    CHECK(std::fabs(loss_a - total.value().item()) <= 1e-6 * std::fabs(loss_a));
    CHECK(a.gen.offset() == b.gen.offset());  // the same draws, in the same order
  }
}

TEST_CASE("grad accumulation: one micro-batch is the plain step, and graphs refuse accumulation", "[train][accum]") {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 50));
  const Tensor x = Tensor::full({2, 8, 8, 1}, 0.25f);
  Run a(cfg), b(cfg);
  ddpm::TrainStepParts pa{a.model.get(), &a.model->params(), &diffusion, &a.gen, a.adam.get(), 1.0};
  ddpm::TrainStepParts pb{b.model.get(), &b.model->params(), &diffusion, &b.gen, b.adam.get(), 1.0};
  ddpm::TrainStep sa(pa, Device::CPU, false), sb(pb, Device::CPU, false);
  CHECK(sa.run(std::vector<Tensor>{x}).item() == sb.run(x).item());
  CHECK(a.model->params().param_arena().to_vector() == b.model->params().param_arena().to_vector());
  REQUIRE_THROWS_WITH(sa.run(std::vector<Tensor>{}), Catch::Contains("no micro-batch"));
}

// The x0-form DDPM sampler (models/ddpm_sampler.h) against diffusers' DDPMScheduler step by step
// (tests/torch/ddpm_diffusers.py), and against our Algorithm-2 sampler where they must agree.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "engine/safetensors.h"
#include "models/ddpm_sampler.h"
#include "models/unet.h"
#include "tests/support/compare.h"
#include "tests/support/sampler_test_util.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("ddpm sampler: every step equals diffusers' DDPMScheduler.step from the same x, output and noise",
          "[ddpm][torch]") {
  struct Case {
    int T, steps;
    const char* variance;
    bool clip;
  };
  for (const Case& k : {Case{100, 100, "fixed_large", true}, Case{1000, 25, "fixed_small", false},
                        Case{200, 40, "fixed_large", false}}) {
    INFO(k.steps << " of " << k.T << " steps, " << k.variance << ", clip " << k.clip);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, k.T));
    models::DdpmOptions o;
    o.steps = k.steps;
    o.variance_type = models::parse_variance_type(k.variance);
    o.clip_sample = k.clip;
    FnModel model;
    const Shape shape{2, 3, 3, 1};
    Generator gen(77);
    std::vector<Tensor> outs;
    Generator probe = gen;
    models::ddpm_sample_loop(diffusion, model, shape, gen, o, [&](int, const Tensor& x) { outs.push_back(x); });
    // Rebuild each step's inputs: x_T, then the outputs; the noise from the same counters.
    std::vector<Tensor> xs{probe.randn(shape)}, epss, noises;
    const std::vector<int> ts = models::inference_timesteps(o.spacing, k.T, k.steps);
    for (std::size_t i = 0; i + 1 < outs.size(); ++i) xs.push_back(outs[i]);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      epss.push_back(model.forward(ag::Var(xs[i]), Tensor::full({2}, float(ts[i])), ag::Var()).value());
      noises.push_back(ts[i] > 0 ? probe.randn(shape) : Tensor::zeros(shape));
    }
    CHECK(probe.offset() == gen.offset());
    TempDir dir("ddpm_diffusers");
    SafeTensorsFile in;
    in.put_f32("x", stack_steps(xs));
    in.put_f32("eps", stack_steps(epss));
    in.put_f32("noise", stack_steps(noises));
    in.metadata["config"] = nlohmann::json{{"T", k.T}, {"steps", k.steps}, {"variance_type", k.variance},
                                           {"clip", k.clip}, {"alphas_cumprod", diffusion.schedule().alphas_cumprod}}
                                .dump();
    save_safetensors(dir.file("in.safetensors"), in);
    run_reference_script("ddpm_diffusers.py", {dir.file("in.safetensors"), dir.file("out.safetensors")});
    const SafeTensorsFile ref = load_safetensors(dir.file("out.safetensors"));
    const std::vector<float> ref_ts = ref.at("timesteps").to_f32().to_vector();
    REQUIRE(ref_ts.size() == ts.size());
    for (std::size_t i = 0; i < ts.size(); ++i) CHECK(int(ref_ts[i]) == ts[i]);
    // Our float32 step against diffusers' float64 one from the same inputs: 1e-5 relative to each
    // step's largest value (the bound).
    const Tensor ours = stack_steps(outs), theirs = ref.at("prev").to_f32();
    const int64_t per = shape_numel(shape);
    for (std::size_t i = 0; i < ts.size(); ++i)
      expect_close("step " + std::to_string(i) + " (t " + std::to_string(ts[i]) + ")",
                   Tensor::view_of(ours, static_cast<int64_t>(i) * per, shape),
                   Tensor::view_of(theirs, static_cast<int64_t>(i) * per, shape), 1e-5);
  }
}

TEST_CASE("ddpm sampler: fixed_small over all T steps without clipping is Algorithm 2", "[ddpm]") {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  Generator init(3);
  models::Unet unet(cfg, init);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Cosine, 30));
  Generator g1(9), g2(9);
  const Tensor a = diffusion.p_sample_loop(unet, {2, 8, 8, 1}, g1);
  const Tensor b = models::ddpm_sample_loop(diffusion, unet, {2, 8, 8, 1}, g2, models::DdpmOptions{});
  // The same chain in two algebraic forms (eps form vs x0 form), in float32 over 30 steps: 1e-4 of
  // the images' size.
  expect_close("x0-form vs eps-form", b, a, 1e-4, 1.0);
  CHECK(g1.offset() == g2.offset());  // the same draws
  REQUIRE_THROWS_WITH(models::parse_variance_type("learned"), Catch::Contains("fixed_small or fixed_large"));
}

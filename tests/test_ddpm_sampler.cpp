// The x0-form DDPM sampler (models/ddpm_sampler.h) against diffusers' DDPMScheduler step by step
// (tests/torch/ddpm_diffusers.py), and against our Algorithm-2 sampler where they must agree.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
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
    std::string respacing;  // improved-diffusion's, as diffusers' custom timesteps; "" = none
    bool thresholding;
  };
  for (const Case& k : {Case{100, 100, "fixed_large", true, "", false}, Case{1000, 25, "fixed_small", false, "", false},
                        Case{200, 40, "fixed_large", false, "", true}, Case{100, 0, "fixed_large", true, "ddim10", false},
                        Case{1000, 0, "fixed_small", false, "10,15,5", true}}) {
    INFO(k.steps << " of " << k.T << " steps, " << k.variance << ", clip " << k.clip << ", respacing '" << k.respacing
                 << "', thresholding " << k.thresholding);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, k.T));
    models::DdpmOptions o;
    o.steps = k.steps;
    o.variance_type = models::parse_variance_type(k.variance);
    o.clip_sample = k.clip;
    o.thresholding.enabled = k.thresholding;
    o.thresholding.ratio = 0.9;  // over 9 elements a sample: between two order statistics
    o.thresholding.max_value = 1.7;
    if (!k.respacing.empty()) o.timesteps = models::respaced_timesteps(k.respacing, k.T);
    FnModel model;
    const Shape shape{2, 3, 3, 1};
    Generator gen(77);
    std::vector<Tensor> outs;
    Generator probe = gen;
    models::ddpm_sample_loop(diffusion, model, shape, gen, o, [&](int, const Tensor& x) { outs.push_back(x); });
    // Rebuild each step's inputs: x_T, then the outputs; the noise from the same counters.
    std::vector<Tensor> xs{probe.randn(shape)}, epss, noises;
    const std::vector<int> ts = o.timesteps.empty() ? models::inference_timesteps(o.spacing, k.T, k.steps) : o.timesteps;
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
    in.metadata["config"] = nlohmann::json{{"T", k.T},
                                           {"steps", k.steps},
                                           {"variance_type", k.variance},
                                           {"clip", k.clip},
                                           {"custom_timesteps", o.timesteps},
                                           {"thresholding", k.thresholding},
                                           {"thresholding_ratio", o.thresholding.ratio},
                                           {"sample_max_value", o.thresholding.max_value},
                                           {"alphas_cumprod", diffusion.schedule().alphas_cumprod}}
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

TEST_CASE("ddpm sampler: improved-diffusion's respacing", "[ddpm]") {
  // Worked by hand from space_timesteps' definition.
  CHECK(models::respaced_timesteps("ddim3", 10) == std::vector<int>{8, 4, 0});      // stride 4: 0, 4, 8
  CHECK(models::respaced_timesteps("4", 10) == std::vector<int>{9, 6, 3, 0});       // stride 9 / 3
  CHECK(models::respaced_timesteps("2,3", 10) == std::vector<int>{9, 7, 5, 4, 0});  // sections 0-4 and 5-9
  CHECK(models::respaced_timesteps("3", 8) == std::vector<int>{7, 4, 0});           // 0, 3.5 -> 4 (half to even), 7
  CHECK(models::respaced_timesteps("1", 5) == std::vector<int>{0});
  const std::vector<int> d50 = models::respaced_timesteps("ddim50", 1000);
  REQUIRE(d50.size() == 50);
  CHECK(d50.front() == 980);
  CHECK(d50.back() == 0);
  CHECK(models::respaced_timesteps("250", 1000).size() == 250);
  CHECK(models::respaced_timesteps("10,15,20", 1000).size() == 45);
  REQUIRE_THROWS_WITH(models::respaced_timesteps("ddim7", 10), Catch::Contains("no integer stride"));
  REQUIRE_THROWS_WITH(models::respaced_timesteps("20", 10), Catch::Contains("fewer than 20"));
  REQUIRE_THROWS_WITH(models::respaced_timesteps("ten", 10), Catch::Contains("ddimN"));
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

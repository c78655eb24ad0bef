// The DDIM sampler (models/ddim.h, kernels/ddim_step.h): the timestep lists, the fused step against
// a float64 reference, and every step against diffusers' DDIMScheduler (tests/torch/ddim_diffusers.py)
// from the same x, model output and noise.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "engine/safetensors.h"
#include "kernels/ddim_step.h"
#include "models/ddim.h"
#include "models/schedule.h"
#include "models/unet.h"
#include "tests/support/compare.h"
#include "tests/support/sampler_test_util.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("ddim: timestep lists follow diffusers' leading, linspace and trailing spacings", "[ddim]") {
  using models::TimestepSpacing;
  const auto lead = models::inference_timesteps(TimestepSpacing::Leading, 1000, 50);
  CHECK(lead.front() == 980);
  CHECK(lead.back() == 0);
  CHECK(lead[1] == 960);
  CHECK(models::inference_timesteps(TimestepSpacing::Leading, 1000, 50, 1).front() == 981);
  const auto trail = models::inference_timesteps(TimestepSpacing::Trailing, 1000, 50);
  CHECK(trail.front() == 999);
  CHECK(trail.back() == 19);
  CHECK(models::inference_timesteps(TimestepSpacing::Linspace, 1000, 3) == std::vector<int>{999, 500, 0});  // 499.5 -> 500
  CHECK(models::inference_timesteps(TimestepSpacing::Trailing, 10, 3) == std::vector<int>{9, 6, 2});
  REQUIRE_THROWS_WITH(models::inference_timesteps(TimestepSpacing::Leading, 10, 11), Catch::Contains("[1, T = 10]"));
  REQUIRE_THROWS_WITH(models::parse_timestep_spacing("even"), Catch::Contains("leading, linspace or trailing"));
}

TEST_CASE("ddim: the fused step matches a float64 evaluation of diffusers' formulas", "[ddim]") {
  DD_TEST_RANDOM(rng);
  const Shape s{2, 3, 5, 1};
  const Tensor x = from_double(s, rng.uniform(30, -3.0, 3.0)), eps = from_double(s, rng.uniform(30, -2.0, 2.0));
  const models::Schedule sch = models::Schedule::make(models::BetaSchedule::Cosine, 100);
  for (double eta : {0.0, 0.5}) {
    for (bool clip : {false, true}) {
      models::DdimOptions o;
      o.steps = 10;
      o.eta = eta;
      o.clip_sample = clip;
      const kernels::DdimStepCoefs c = models::ddim_coefs(sch, o, 45);
      Tensor x0;
      const Tensor prev = kernels::ddim_step(x, eps, c, 9, 4, &x0);
      const std::vector<float> z = randn(s, 9, 4).to_vector(), xv = x.to_vector(), ev = eps.to_vector();
      const std::vector<float> pv = prev.to_vector(), x0v = x0.to_vector();
      for (std::size_t i = 0; i < xv.size(); ++i) {
        double e = (double(xv[i]) - double(c.sqrt_one_minus_abar) * ev[i]) / double(c.sqrt_abar);
        if (clip) e = std::min(1.0, std::max(-1.0, e));
        // use_clipped_model_output (the default): eps re-derived from the clipped x0.
        const double ed = c.rederive_eps ? (double(xv[i]) - double(c.sqrt_abar) * e) / double(c.sqrt_one_minus_abar) : ev[i];
        const double p = double(c.sqrt_abar_prev) * e + double(c.dir) * ed + (eta > 0 ? double(c.sigma) * z[i] : 0.0);
        // float32 arithmetic of a few terms of size up to ~|x| / sqrt(abar) (here < 10): 1e-6 of that.
        CHECK(std::fabs(x0v[i] - e) <= 1e-6 * std::max(1.0, std::fabs(e)));
        CHECK(std::fabs(pv[i] - p) <= 1e-5 * std::max(1.0, std::fabs(p)));
      }
    }
  }
}

TEST_CASE("ddim: every step equals diffusers' DDIMScheduler.step from the same x, output and noise", "[ddim][torch]") {
  struct Case {
    const char* spacing;
    int T, steps;
    double eta;
    bool clip, alpha_one;
    const char* objective;
    bool clipped_output = true;
    bool thresholding = false;
    bool zero_snr = false;  // the betas rescaled to zero terminal SNR (abar_{T-1} = 0)
  };
  for (const Case& k : {Case{"leading", 1000, 50, 0.0, true, true, "pred_noise"},
                        Case{"trailing", 1000, 20, 0.7, false, true, "pred_noise"},
                        Case{"linspace", 100, 13, 1.0, true, false, "pred_noise"},
                        Case{"leading", 1000, 25, 0.5, false, true, "pred_v"},
                        Case{"trailing", 200, 10, 0.0, true, true, "pred_x0"},
                        Case{"leading", 1000, 30, 0.3, true, true, "pred_noise", false},
                        Case{"leading", 1000, 50, 0.0, true, true, "pred_noise", true, true},
                        Case{"trailing", 1000, 25, 0.4, false, true, "pred_v", true, true, true},
                        Case{"trailing", 1000, 10, 0.0, true, true, "pred_x0", true, false, true}}) {
    INFO("spacing " << k.spacing << ", " << k.steps << " of " << k.T << " steps, eta " << k.eta << ", " << k.objective
                    << ", thresholding " << k.thresholding << ", zero SNR " << k.zero_snr);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, k.T, k.zero_snr),
                                              kernels::LossType::L1, models::parse_objective(k.objective));
    models::DdimOptions o;
    o.steps = k.steps;
    o.eta = k.eta;
    o.spacing = models::parse_timestep_spacing(k.spacing);
    o.clip_sample = k.clip;
    o.set_alpha_to_one = k.alpha_one;
    o.use_clipped_model_output = k.clipped_output;
    o.thresholding.enabled = k.thresholding;
    o.thresholding.ratio = 0.9;  // over 16 elements a sample: between two order statistics
    o.thresholding.max_value = 1.7;
    FnModel model;
    const Shape shape{2, 4, 4, 1};
    Generator gen(123);
    Tensor x = gen.randn(shape);
    std::vector<Tensor> xs, epss, noises, prevs, x0s;
    const std::vector<int> ts = models::inference_timesteps(o.spacing, k.T, k.steps);
    for (int t : ts) {
      xs.push_back(x);
      epss.push_back(model.forward(ag::Var(x), Tensor::full({2}, float(t)), ag::Var()).value());
      noises.push_back(k.eta > 0 ? randn(shape, gen.seed(), gen.offset()) : Tensor::zeros(shape));
      Tensor x0;
      x = models::ddim_step(diffusion, model, x, t, gen, o, &x0);
      prevs.push_back(x);
      x0s.push_back(x0);
    }
    TempDir dir("ddim_diffusers");
    SafeTensorsFile in;
    in.put_f32("x", stack_steps(xs));
    in.put_f32("eps", stack_steps(epss));
    in.put_f32("noise", stack_steps(noises));
    in.metadata["config"] = nlohmann::json{{"T", k.T}, {"steps", k.steps}, {"eta", k.eta}, {"spacing", k.spacing},
                                           {"clip", k.clip}, {"set_alpha_to_one", k.alpha_one}, {"use_clipped_model_output", k.clipped_output},
                                           {"thresholding", k.thresholding}, {"thresholding_ratio", o.thresholding.ratio},
                                           {"sample_max_value", o.thresholding.max_value},
                                           {"prediction_type", std::string(k.objective) == "pred_v"    ? "v_prediction"
                                                               : std::string(k.objective) == "pred_x0" ? "sample"
                                                                                                     : "epsilon"},
                                           {"alphas_cumprod", diffusion.schedule().alphas_cumprod}}
                                .dump();
    save_safetensors(dir.file("in.safetensors"), in);
    run_reference_script("ddim_diffusers.py", {dir.file("in.safetensors"), dir.file("out.safetensors")});
    const SafeTensorsFile ref = load_safetensors(dir.file("out.safetensors"));
    const std::vector<float> ref_ts = ref.at("timesteps").to_f32().to_vector();
    REQUIRE(ref_ts.size() == ts.size());
    for (std::size_t i = 0; i < ts.size(); ++i) CHECK(int(ref_ts[i]) == ts[i]);  // the lists equal exactly
    // Each step from the same inputs: our float32 step against diffusers' float64 one, 1e-5 relative
    // to the step's largest value (the bound; float32 rounding of ~4 operations is ~1e-6).
    expect_close("prev_sample", stack_steps(prevs), ref.at("prev").to_f32(), 1e-5);
    expect_close("pred_original_sample", stack_steps(x0s), ref.at("x0").to_f32(), 1e-5);
  }
}

TEST_CASE("ddim: the sampling loop runs a U-Net, self-conditioned, and refuses bad options", "[ddim]") {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  cfg.self_condition = true;
  Generator init(2);
  models::Unet unet(cfg, init);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 40));
  models::DdimOptions o;
  o.steps = 5;
  o.eta = 0.3;
  Generator g1(5), g2(5);
  std::vector<int> seen;
  const Tensor a = models::ddim_sample_loop(diffusion, unet, {2, 8, 8, 1}, g1, o, [&](int t, const Tensor&) { seen.push_back(t); });
  const Tensor b = models::ddim_sample_loop(diffusion, unet, {2, 8, 8, 1}, g2, o);
  CHECK(a.to_vector() == b.to_vector());  // deterministic given the seed
  CHECK(seen == models::inference_timesteps(models::TimestepSpacing::Leading, 40, 5));
  for (float v : a.to_vector()) CHECK(std::isfinite(v));
  o.steps = 41;
  REQUIRE_THROWS_WITH(models::ddim_sample_loop(diffusion, unet, {2, 8, 8, 1}, g1, o), Catch::Contains("--steps 41"));
}

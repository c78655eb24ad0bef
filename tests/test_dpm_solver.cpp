// The DPM-Solver++ sampler (models/dpm_solver.h, kernels/dpm_solver_step.h): the fused step against
// a float64 evaluation, and every step against diffusers' DPMSolverMultistepScheduler
// (tests/torch/dpm_diffusers.py) from the same x and model output.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/rng.h"
#include "engine/safetensors.h"
#include "kernels/dpm_solver_step.h"
#include "models/dpm_solver.h"
#include "models/unet.h"
#include "tests/support/compare.h"
#include "tests/support/sampler_test_util.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;

TEST_CASE("dpm-solver: the fused step is its linear combination (float64 reference)", "[dpm]") {
  DD_TEST_RANDOM(rng);
  const Shape s{2, 3, 3, 1};
  const Tensor x = from_double(s, rng.uniform(18, -2.0, 2.0)), eps = from_double(s, rng.uniform(18, -1.0, 1.0));
  const Tensor m1 = from_double(s, rng.uniform(18, -1.0, 1.0)), m2 = from_double(s, rng.uniform(18, -1.0, 1.0));
  kernels::DpmStepCoefs k{0.8f, 0.6f, 0.7f, 0.9f, -0.45f, 0.1f};
  Tensor m0;
  const std::vector<float> out = kernels::dpm_solver_step(x, eps, m1, m2, k, &m0).to_vector();
  const std::vector<float> xv = x.to_vector(), ev = eps.to_vector(), a = m1.to_vector(), b = m2.to_vector();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double mm = (double(xv[i]) - double(k.sigma_s0) * ev[i]) / double(k.alpha_s0);
    const double want = double(k.a) * xv[i] + double(k.b) * mm + double(k.c) * a[i] + double(k.d) * b[i];
    // A few float32 operations on terms up to ~4: 1e-6 of that.
    CHECK(std::fabs(m0.to_vector()[i] - mm) <= 4e-6);
    CHECK(std::fabs(out[i] - want) <= 4e-6);
  }
  REQUIRE_THROWS_WITH(kernels::dpm_solver_step(x, eps, Tensor(), Tensor(), k, nullptr), Catch::Contains("needs m1"));
}

TEST_CASE("dpm-solver: every step equals diffusers' DPMSolverMultistepScheduler from the same x and output",
          "[dpm][torch]") {
  struct Case {
    const char* spacing;
    int T, steps, order;
    bool lower_final;
    bool karras = false, thresholding = false, zero_snr = false;
    const char* objective = "pred_noise";
  };
  for (const Case& k : {Case{"linspace", 1000, 20, 2, true}, Case{"leading", 1000, 10, 3, true},
                        Case{"trailing", 1000, 12, 1, true}, Case{"linspace", 100, 8, 3, false},
                        Case{"linspace", 1000, 20, 2, true, true}, Case{"linspace", 1000, 15, 3, true, true, true},
                        Case{"leading", 1000, 12, 2, true, false, true},
                        Case{"trailing", 1000, 10, 2, true, false, false, true, "pred_v"},
                        Case{"trailing", 1000, 16, 3, true, true, false, true, "pred_v"}}) {
    INFO("spacing " << k.spacing << ", " << k.steps << " of " << k.T << ", order " << k.order << ", karras "
                    << k.karras << ", thresholding " << k.thresholding << ", zero SNR " << k.zero_snr << ", "
                    << k.objective);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, k.T, k.zero_snr),
                                              kernels::LossType::L1, models::parse_objective(k.objective));
    models::DpmSolverOptions o;
    o.steps = k.steps;
    o.order = k.order;
    o.lower_order_final = k.lower_final;
    o.spacing = models::parse_timestep_spacing(k.spacing);
    o.karras_sigmas = k.karras;
    o.thresholding.enabled = k.thresholding;
    o.thresholding.ratio = 0.9;  // over 16 elements a sample: between two order statistics
    o.thresholding.max_value = 1.7;
    FnModel model;
    const Shape shape{2, 4, 4, 1};
    std::vector<Tensor> xs, epss, prevs;
    Generator gen(321);
    models::dpm_solver_sample_loop(diffusion, model, shape, gen, o, [&](int, const Tensor& x) { prevs.push_back(x); });
    // The inputs of each step: x_T, then each step's output; the outputs re-evaluated on them.
    Generator again(321);
    xs.push_back(again.randn(shape));
    for (std::size_t i = 0; i + 1 < prevs.size(); ++i) xs.push_back(prevs[i]);
    const std::vector<int> ts = models::dpm_solver_plan(diffusion.schedule(), o).timesteps;
    REQUIRE(ts.size() == prevs.size());
    for (std::size_t i = 0; i < ts.size(); ++i)
      epss.push_back(model.forward(ag::Var(xs[i]), Tensor::full({2}, float(ts[i])), ag::Var()).value());
    TempDir dir("dpm_diffusers");
    SafeTensorsFile in;
    in.put_f32("x", stack_steps(xs));
    in.put_f32("eps", stack_steps(epss));
    in.metadata["config"] = nlohmann::json{{"T", k.T}, {"steps", k.steps}, {"order", k.order}, {"spacing", k.spacing},
                                           {"lower_order_final", k.lower_final},
                                           {"karras", k.karras},
                                           {"thresholding", k.thresholding},
                                           {"thresholding_ratio", o.thresholding.ratio},
                                           {"sample_max_value", o.thresholding.max_value},
                                           {"zero_snr", k.zero_snr},
                                           {"prediction_type", std::string(k.objective) == "pred_v" ? "v_prediction"
                                                                                                   : "epsilon"},
                                           {"alphas_cumprod", diffusion.schedule().alphas_cumprod}}
                                .dump();
    save_safetensors(dir.file("in.safetensors"), in);
    run_reference_script("dpm_diffusers.py", {dir.file("in.safetensors"), dir.file("out.safetensors")});
    const SafeTensorsFile ref = load_safetensors(dir.file("out.safetensors"));
    const std::vector<float> ref_ts = ref.at("timesteps").to_f32().to_vector();
    REQUIRE(ref_ts.size() == ts.size());
    for (std::size_t i = 0; i < ts.size(); ++i) CHECK(int(ref_ts[i]) == ts[i]);  // the lists equal exactly
    // diffusers runs the step in float32 from float32 sigmas (log-SNR differences in float32), we in
    // double rounded once: 1e-5 relative to each step's largest value (the bound).
    const Tensor ours = stack_steps(prevs), theirs = ref.at("prev").to_f32();
    const int64_t per = shape_numel(shape);
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const Tensor a = Tensor::view_of(ours, static_cast<int64_t>(i) * per, shape);
      const Tensor b = Tensor::view_of(theirs, static_cast<int64_t>(i) * per, shape);
      expect_close("step " + std::to_string(i) + " (t " + std::to_string(ts[i]) + ")", a, b, 1e-5);
    }
  }
}

TEST_CASE("dpm-solver: a U-Net samples deterministically, and bad options are refused", "[dpm]") {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  Generator init(2);
  models::Unet unet(cfg, init);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Cosine, 50));
  models::DpmSolverOptions o;
  o.steps = 6;
  Generator g1(5), g2(5);
  const Tensor a = models::dpm_solver_sample_loop(diffusion, unet, {2, 8, 8, 1}, g1, o);
  const Tensor b = models::dpm_solver_sample_loop(diffusion, unet, {2, 8, 8, 1}, g2, o);
  CHECK(a.to_vector() == b.to_vector());
  for (float v : a.to_vector()) CHECK(std::isfinite(v));
  o.order = 4;
  REQUIRE_THROWS_WITH(models::dpm_solver_sample_loop(diffusion, unet, {2, 8, 8, 1}, g1, o), Catch::Contains("--order 4"));
}

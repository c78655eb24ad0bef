// A diffusers DDPMPipeline folder (tests/torch/unet2d_diffusers.py: random UNet2DModel weights,
// DDPMScheduler fixed_large + clip_sample, save_pretrained) sampled by us and by diffusers from the
// same x_T and the same per-step noise: every x_t of 20 scheduler steps within 1e-5. And a folder we
// write opens in UNet2DModel.from_pretrained / DDPMPipeline.from_pretrained with strict keys.
#include <catch2/catch.hpp>

#include <fstream>

#include "engine/safetensors.h"
#include "models/ddpm_sampler.h"
#include "models/diffusers_folder.h"
#include "models/torch_layout.h"
#include "models/weights.h"
#include "tests/support/compare.h"
#include "tests/support/sampler_test_util.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;
using namespace dd::models;

namespace {
const nlohmann::json kTinyConfig = {{"sample_size", 8},
                                    {"block_out_channels", {32, 64}},
                                    {"layers_per_block", 1},
                                    {"down_block_types", {"DownBlock2D", "AttnDownBlock2D"}},
                                    {"up_block_types", {"AttnUpBlock2D", "UpBlock2D"}},
                                    {"norm_num_groups", 8},
                                    {"attention_head_dim", nullptr},
                                    {"downsample_padding", 0},
                                    {"flip_sin_to_cos", false},
                                    {"freq_shift", 1},
                                    {"norm_eps", 1e-6}};

std::string make_pipeline(const TempDir& dir) {
  std::ofstream(dir.file("config.json")) << kTinyConfig.dump();
  run_reference_script("unet2d_diffusers.py", {"pipeline", dir.file("config.json"), dir.file("pipe"), "7"});
  return dir.file("pipe");
}
}  // namespace

TEST_CASE("DDPMPipeline folder: our DDPM chain equals diffusers' step by step (20 steps)", "[unet2d][torch][ddpm]") {
  TempDir dir("unet2d_pipeline");
  const std::string pipe = make_pipeline(dir);
  ModelConfig cfg;
  std::optional<DiffusersScheduler> sched;
  AnyModel model = load_model(pipe, &cfg, Device::CPU, &sched);
  REQUIRE(sched.has_value());
  CHECK(sched->variance_type == "fixed_large");
  CHECK(sched->clip_sample);
  const GaussianDiffusion diffusion(sched->schedule());
  DdpmOptions o;
  o.steps = 20;
  o.variance_type = parse_variance_type(sched->variance_type);
  o.clip_sample = sched->clip_sample;
  o.spacing = parse_timestep_spacing(sched->timestep_spacing);
  const Shape shape{2, 8, 8, 3};
  Generator gen(11);
  Generator probe = gen;
  std::vector<Tensor> outs;
  ddpm_sample_loop(diffusion, *model.net, shape, gen, o, [&](int, const Tensor& x) { outs.push_back(x); });
  REQUIRE(outs.size() == 20);
  // The same draws: x_T, then one normal tensor per step with t > 0 (the model draws nothing).
  Tensor x_t = probe.randn(shape);
  const std::vector<int> ts = inference_timesteps(o.spacing, diffusion.T(), o.steps);
  std::vector<Tensor> noises;
  for (int t : ts) noises.push_back(nhwc_to_nchw(t > 0 ? probe.randn(shape) : Tensor::zeros(shape)));
  CHECK(probe.offset() == gen.offset());
  SafeTensorsFile in;
  in.put_f32("x", nhwc_to_nchw(x_t));
  in.put_f32("noise", stack_steps(noises));
  in.metadata["steps"] = "20";
  save_safetensors(dir.file("in.safetensors"), in);
  run_reference_script("unet2d_diffusers.py", {"pipeline_run", pipe, dir.file("in.safetensors"), dir.file("out.safetensors")});
  const SafeTensorsFile ref = load_safetensors(dir.file("out.safetensors"));
  const std::vector<float> ref_ts = ref.at("timesteps").to_f32().to_vector();
  REQUIRE(ref_ts.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) CHECK(static_cast<int>(ref_ts[i]) == ts[i]);
  const Tensor theirs = ref.at("xs").to_f32();
  const Shape nchw{2, 3, 8, 8};
  for (size_t i = 0; i < outs.size(); ++i)
    // float32 chains in both engines (diffusers' float32 alphas_cumprod, ours double): 1e-5 relative
    // to each x_t's largest element (the bound).
    expect_close("x after step " + std::to_string(i) + " (t " + std::to_string(ts[i]) + ")", nhwc_to_nchw(outs[i]),
                 Tensor::view_of(theirs, static_cast<int64_t>(i) * shape_numel(nchw), nchw), 1e-5);
}

TEST_CASE("A folder we write opens in diffusers with strict keys and reads back the same", "[unet2d][torch]") {
  TempDir dir("unet2d_export");
  Generator gen(3);
  Unet2DConfig c = Unet2DConfig::from_json(kTinyConfig);
  c.dropout = 0.1;
  Unet2D model(c, gen);
  DiffusersScheduler s;
  s.variance_type = "fixed_large";
  write_diffusers_folder(dir.file("out"), model.params(), c, s);
  run_reference_script("unet2d_diffusers.py", {"load", dir.file("out"), dir.file("n.txt")});
  std::ifstream in(dir.file("n.txt"));
  int64_t n = 0;
  in >> n;
  CHECK(n == model.params().numel());
  ModelConfig cfg;
  std::optional<DiffusersScheduler> back_s;
  AnyModel back = load_model(dir.file("out"), &cfg, Device::CPU, &back_s);
  REQUIRE(cfg.unet2d);
  CHECK(cfg.unet2d->to_json() == c.to_json());
  CHECK(back_s->to_json() == s.to_json());
  const auto a = model.params().state_dict(), b = back.params->state_dict();
  for (const auto& [name, t] : a) CHECK(b.at(name).to_vector() == t.to_vector());
}

// models/unet2d against diffusers' UNet2DModel (tests/torch/unet2d_diffusers.py): random weights saved
// by diffusers' save_pretrained are read through our folder loader; the forward must agree within
// 1e-5 and the gradient of sum(out * g) wrt the input and every parameter within 1e-4 (relative to
// each tensor's largest element). Configs: google/ddpm-cifar10-32's published one, and two small odd
// ones covering the other options (attention heads, downsample_padding 1 and 0, flip_sin_to_cos,
// freq_shift, mid_block_scale_factor, center_input_sample, add_attention false, in != out channels).
#include <catch2/catch.hpp>

#include <filesystem>
#include <cmath>
#include <fstream>

#include "autograd/elementwise.h"
#include "engine/safetensors.h"
#include "models/diffusers_folder.h"
#include "models/torch_layout.h"
#include "models/unet2d.h"
#include "tests/support/compare.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_runner.h"

using namespace dd;
using namespace dd::test;
using namespace dd::models;

namespace {

// Runs the reference on cfg and compares; returns diffusers' num_parameters().
int64_t check_against_diffusers(const nlohmann::json& cfg, int batch, uint64_t seed, bool all_grads) {
  TempDir dir("unet2d_diffusers");
  {
    std::ofstream(dir.file("config.json")) << cfg.dump();
  }
  run_reference_script("unet2d_diffusers.py",
                       {"make", dir.file("config.json"), dir.path(), std::to_string(seed), std::to_string(batch)});
  SafeTensorsFile ref = load_safetensors(dir.file("ref.safetensors"));

  DiffusersFolder folder;
  auto model = load_unet2d(dir.file("model"), &folder);
  // The older attention key names load to the same parameters.
  DiffusersFolder legacy = read_diffusers_folder(dir.file("legacy"));
  for (const auto& [name, t] : model->params().state_dict()) {
    INFO(name);
    REQUIRE(legacy.tensors.count(name) == 1);
    CHECK(legacy.tensors.at(name).to_vector() == t.to_vector());
  }

  Tensor x = nchw_to_nhwc(ref.tensors.at("x").to_f32());
  Tensor g = nchw_to_nhwc(ref.tensors.at("g").to_f32());
  const Tensor t64 = ref.tensors.at("t").to_f32();
  ag::Var xv(x, true);
  ag::Var out = model->forward(xv, t64, ag::Var());
  expect_close("out", nhwc_to_nchw(out.value()), ref.tensors.at("out").to_f32(), 1e-5);
  ag::Tape::current().backward(ag::sum(ag::mul(out, ag::Var(g))));
  expect_close("grad_x", nhwc_to_nchw(xv.grad()), ref.tensors.at("grad_x").to_f32(), 1e-4);
  int checked = 0;
  for (const auto& p : model->params().all()) {
    REQUIRE(p.var.has_grad());
    if (!all_grads && checked >= 40 && p.name.find("attentions") == std::string::npos) continue;
    Tensor ours = p.kind == ParamKind::ConvWeight ? ohwi_to_oihw(p.var.grad()) : p.var.grad();
    // The key bias's gradient is zero in exact arithmetic (it shifts every logit of a softmax row by
    // the same amount): both engines leave rounding noise, judged at the value bias's gradient scale.
    double floor = 1e-6;
    const std::string kb = ".to_k.bias";
    if (p.name.size() > kb.size() && p.name.compare(p.name.size() - kb.size(), kb.size(), kb) == 0) {
      const std::string vb = "grad." + p.name.substr(0, p.name.size() - kb.size()) + ".to_v.bias";
      for (float v : ref.tensors.at(vb).to_f32().to_vector()) floor = std::max(floor, std::abs(double(v)));
    }
    expect_close("grad." + p.name, ours, ref.tensors.at("grad." + p.name).to_f32(), 1e-4, floor);
    ++checked;
  }
  // Every diffusers parameter has a counterpart here (strict loading proved the converse).
  int64_t grads = 0;
  for (const auto& kv : ref.tensors) grads += kv.first.rfind("grad.", 0) == 0 && kv.first != "grad_x";
  CHECK(grads == static_cast<int64_t>(model->params().all().size()));
  ag::Tape::current().clear();
  return std::stoll(ref.metadata.at("num_parameters"));
}

}  // namespace

TEST_CASE("UNet2DModel: small odd config with heads, padding 1, flip, center_input_sample", "[unet2d][torch]") {
  const nlohmann::json cfg = {{"sample_size", 8},
                              {"in_channels", 3},
                              {"out_channels", 3},
                              {"block_out_channels", {32, 64}},
                              {"layers_per_block", 1},
                              {"down_block_types", {"AttnDownBlock2D", "DownBlock2D"}},
                              {"up_block_types", {"UpBlock2D", "AttnUpBlock2D"}},
                              {"norm_num_groups", 8},
                              {"attention_head_dim", 8},
                              {"downsample_padding", 1},
                              {"flip_sin_to_cos", true},
                              {"freq_shift", 0},
                              {"mid_block_scale_factor", 1.414},
                              {"center_input_sample", true},
                              {"norm_eps", 1e-5}};
  const int64_t n = check_against_diffusers(cfg, 2, 1, true);
  Generator gen(0);
  CHECK(Unet2D(Unet2DConfig::from_json(cfg), gen).params().numel() == n);
}

TEST_CASE("UNet2DModel: three levels, padding 0, one head, no mid attention, 1 -> 2 channels", "[unet2d][torch]") {
  const nlohmann::json cfg = {{"sample_size", 12},
                              {"in_channels", 1},
                              {"out_channels", 2},
                              {"block_out_channels", {16, 24, 40}},
                              {"layers_per_block", 2},
                              {"down_block_types", {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"}},
                              {"up_block_types", {"AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"}},
                              {"norm_num_groups", 8},
                              {"attention_head_dim", nullptr},
                              {"downsample_padding", 0},
                              {"flip_sin_to_cos", false},
                              {"freq_shift", 1},
                              {"add_attention", false},
                              {"norm_eps", 1e-6}};
  check_against_diffusers(cfg, 3, 2, true);
}

TEST_CASE("UNet2DModel: google/ddpm-cifar10-32's config, forward, gradients and parameter count",
          "[unet2d][torch][cifar]") {
  const nlohmann::json cfg = Unet2DConfig::ddpm_cifar10().to_json();
  // Batch 1 and the gradients of the first 40 parameters and every attention's: the whole
  // backward runs, the CI stays fast.
  const int64_t n = check_against_diffusers(cfg, 1, 3, false);
  Generator gen(0);
  CHECK(Unet2D(Unet2DConfig::ddpm_cifar10(), gen).params().numel() == n);
  CHECK(n > 35'700'000);
  CHECK(n < 35'800'000);
}

TEST_CASE("Unet2DConfig reads diffusers' keys and refuses what it does not support", "[unet2d]") {
  const Unet2DConfig c = Unet2DConfig::from_json(Unet2DConfig::ddpm_cifar10().to_json());
  CHECK(c.block_out_channels == std::vector<int>{128, 256, 256, 256});
  CHECK(c.attention_head_dim == 0);
  CHECK(c.downsample_padding == 0);
  CHECK_FALSE(c.flip_sin_to_cos);
  nlohmann::json bad = Unet2DConfig::ddpm_cifar10().to_json();
  bad["resnet_time_scale_shift"] = "scale_shift";
  CHECK_THROWS_WITH(Unet2DConfig::from_json(bad, "x/config.json"), Catch::Contains("resnet_time_scale_shift"));
  bad = Unet2DConfig::ddpm_cifar10().to_json();
  bad["down_block_types"][0] = "CrossAttnDownBlock2D";
  CHECK_THROWS_WITH(Unet2DConfig::from_json(bad), Catch::Contains("CrossAttnDownBlock2D"));
  bad = Unet2DConfig::ddpm_cifar10().to_json();
  bad["norm_num_groups"] = 48;
  CHECK_THROWS_WITH(Unet2DConfig::from_json(bad), Catch::Contains("norm_num_groups"));
}

// Training diffusers' UNet2DModel family (train_ddpm --model-config / --model ddpm-cifar10): a tiny
// config trains a few CPU steps with dropout, EMA and a sample grid; a run stopped and resumed ends
// bitwise identical to one trained in one go (dropout masks come from the saved generator); the run's
// weights export as a diffusers folder; the preset fills the paper's recipe for flags not given.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>

#include "apps/ddpm/options.h"
#include "apps/ddpm/trainer.h"
#include "engine/safetensors.h"
#include "models/diffusers_folder.h"
#include "models/weights.h"
#include "tests/support/data_files.h"
#include "tests/support/temp_dir.h"

using namespace dd;
using namespace dd::test;

namespace {
std::string write_tiny_idx(const TempDir& dir) {
  const int n = 16, s = 8;
  std::vector<uint8_t> px(static_cast<size_t>(n * s * s), 0);
  for (int i = 0; i < n; ++i)
    for (int y = i % 4; y < i % 4 + 4; ++y)
      for (int x = (i / 4) % 4; x < (i / 4) % 4 + 4; ++x) px[static_cast<size_t>((i * s + y) * s + x)] = 255;
  const std::string path = dir.file("tiny-images-idx3-ubyte");
  write_bytes(path, idx_bytes(0x00000803, {static_cast<uint32_t>(n), s, s}, px));
  return path;
}

ddpm::TrainOptions tiny_options(const std::string& data, const std::string& out) {
  ddpm::TrainOptions o;
  o.data = data;
  o.out = out;
  o.model = "unet2d";
  o.unet2d_config = {{"block_out_channels", {16, 32}},
                     {"layers_per_block", 1},
                     {"down_block_types", {"DownBlock2D", "AttnDownBlock2D"}},
                     {"up_block_types", {"AttnUpBlock2D", "UpBlock2D"}},
                     {"norm_num_groups", 8},
                     {"attention_head_dim", nullptr},
                     {"downsample_padding", 0},
                     {"flip_sin_to_cos", false},
                     {"freq_shift", 1},
                     {"norm_eps", 1e-6}};
  o.dropout = 0.1;
  o.timesteps = 20;
  o.loss = "l2";
  o.batch_size = 4;
  o.steps = 4;
  o.lr = 2e-4;
  o.lr_warmup_steps = 2;
  o.ema_decay = 0.9999;
  o.ema_every = 1;
  o.ema_start = 0;
  o.sample_every = 0;
  o.save_every = 0;
  o.n_samples = 1;
  o.sample_steps = 2;
  o.log_every = 1;
  o.seed = 9;
  return o;
}

std::FILE* quiet() {
  static std::FILE* f = std::tmpfile();
  return f;
}
}  // namespace

TEST_CASE("train: a UNet2DModel run resumes bitwise (dropout, EMA, Adam) and exports for diffusers",
          "[train][unet2d]") {
  TempDir dir("dd_train_unet2d");
  const std::string data = write_tiny_idx(dir);
  ddpm::train(tiny_options(data, dir.path() + "/straight"), {}, quiet());
  auto part = tiny_options(data, dir.path() + "/resumed");
  part.steps = 2;
  ddpm::train(part, {}, quiet());
  auto rest = tiny_options(data, dir.path() + "/resumed");
  rest.resume = true;
  const auto summary = ddpm::train(rest, {"steps"}, quiet());
  CHECK(summary.start_step == 2);
  CHECK(summary.end_step == 4);
  const auto a = load_safetensors(dir.path() + "/straight/checkpoint.safetensors");
  const auto b = load_safetensors(dir.path() + "/resumed/checkpoint.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  CHECK(a.contains("model/down_blocks.1.attentions.0.to_q.weight"));
  for (const auto& kv : a.tensors) {
    INFO(kv.first);
    REQUIRE(b.contains(kv.first));
    CHECK(kv.second.bytes == b.at(kv.first).bytes);
  }
  CHECK(std::filesystem::exists(dir.path() + "/straight/samples/step_0000004.png"));

  // The weights file is of the unet2d family, loads, and exports as a diffusers folder.
  models::ModelConfig cfg;
  models::AnyModel m = models::load_model(dir.path() + "/straight/model.safetensors", &cfg);
  REQUIRE(cfg.unet2d);
  CHECK(cfg.unet2d->dropout == 0.1);
  CHECK(cfg.unet2d->sample_size == 8);
  CHECK(cfg.unet2d->in_channels == 1);
  CHECK(cfg.unet2d->norm_eps == 1e-6);  // exact: no float round trip through the JSON
  // A run folder (it has a config.json of its own, not diffusers') loads as its model.safetensors.
  CHECK_FALSE(models::is_diffusers_folder(dir.path() + "/straight"));
  CHECK(models::load_model(dir.path() + "/straight").params->numel() == m.params->numel());
  models::DiffusersScheduler s;
  s.num_train_timesteps = 20;
  models::write_diffusers_folder(dir.file("export"), *m.params, *cfg.unet2d, s);
  models::AnyModel back = models::load_model(dir.file("export"));
  CHECK(back.params->numel() == m.params->numel());

  // Dropout is a training-only draw: two runs differing only in it differ.
  auto nodrop = tiny_options(data, dir.path() + "/nodrop");
  nodrop.dropout = 0.0;
  ddpm::train(nodrop, {}, quiet());
  const auto c = load_safetensors(dir.path() + "/nodrop/checkpoint.safetensors");
  CHECK(c.at("model/conv_out.weight").bytes != a.at("model/conv_out.weight").bytes);
}

TEST_CASE("train: --model ddpm-cifar10 fills the paper's recipe for the flags not given", "[train][unet2d]") {
  ddpm::TrainOptions o;
  o.model = "ddpm-cifar10";
  o.batch_size = 7;
  ddpm::apply_ddpm_cifar10_preset(o, {"batch_size"});
  CHECK(o.lr == 2e-4);
  CHECK(o.lr_warmup_steps == 5000);
  CHECK(o.grad_clip == 1.0);
  CHECK(o.ema_decay == 0.9999);
  CHECK(o.ema_every == 1);
  CHECK(o.ema_start == 0);
  CHECK(o.batch_size == 7);  // given explicitly: kept
  CHECK(o.random_flip);
  CHECK(o.dropout == 0.1);
  CHECK(o.steps == 800000);
  CHECK(o.loss == "l2");
  ddpm::TrainOptions bad;
  bad.model = "unet3d";
  bad.data = "x";
  CHECK_THROWS_WITH(ddpm::train(bad, {}, quiet()), Catch::Contains("--model"));
}

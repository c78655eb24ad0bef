// The training run end to end on a tiny generated dataset: the loss falls, a run stopped and
// resumed ends bitwise-identical to one trained in one go, and bad flags give clear errors
// without touching what is already saved.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/ddpm/sampler.h"
#include "apps/ddpm/checkpoint_files.h"
#include "apps/ddpm/trainer.h"
#include "engine/safetensors.h"
#include "kernels/conv_autotune.h"
#include "models/unet.h"
#include "tests/support/data_files.h"
#include "tests/support/temp_dir.h"

using namespace dd;
using namespace dd::test;
using Catch::Contains;

namespace {

// 40 8x8 images of bright squares at varying places: structure a tiny U-Net learns in a few steps.
std::string write_tiny_idx(const TempDir& dir) {
  const int n = 40, s = 8;
  std::vector<uint8_t> px(static_cast<size_t>(n * s * s), 0);
  for (int i = 0; i < n; ++i) {
    const int oy = i % 4, ox = (i / 4) % 4;
    for (int y = oy; y < oy + 4; ++y)
      for (int x = ox; x < ox + 4; ++x) px[static_cast<size_t>((i * s + y) * s + x)] = 255;
  }
  const std::string path = dir.file("tiny-images-idx3-ubyte");
  write_bytes(path, idx_bytes(0x00000803, {static_cast<uint32_t>(n), s, s}, px));
  return path;
}

ddpm::TrainOptions tiny_options(const std::string& data, const std::string& out) {
  ddpm::TrainOptions o;
  o.data = data;
  o.out = out;
  o.dim = 8;
  o.dim_mults = {1, 2};
  o.timesteps = 20;
  o.batch_size = 8;
  o.steps = 12;
  o.lr = 2e-3;
  o.ema_start = 2;
  o.ema_every = 2;
  o.sample_every = 0;
  o.save_every = 0;
  o.n_samples = 2;
  o.log_every = 3;
  o.seed = 5;
  return o;
}

std::FILE* quiet() {
  static std::FILE* f = std::tmpfile();
  return f;
}

}  // namespace

TEST_CASE("train: resuming gives bitwise-identical weights, EMA, Adam state and data order", "[train]") {
  const int accum = GENERATE(1, 2);  // --grad-accum: micro-batches per step
  INFO("grad_accum " << accum);
  TempDir dir("dd_train_resume");
  const std::string data = write_tiny_idx(dir);
  auto straight = tiny_options(data, dir.path() + "/straight");
  straight.grad_accum = accum;
  ddpm::train(straight, {}, quiet());

  auto part = tiny_options(data, dir.path() + "/resumed");
  part.grad_accum = accum;
  part.steps = 5;
  ddpm::train(part, {}, quiet());
  auto rest = tiny_options(data, dir.path() + "/resumed");
  rest.grad_accum = accum;
  rest.resume = true;
  const auto summary = ddpm::train(rest, {"steps"}, quiet());
  CHECK(summary.start_step == 5);
  CHECK(summary.end_step == 12);

  const auto a = load_safetensors(dir.path() + "/straight/checkpoint.safetensors");
  const auto b = load_safetensors(dir.path() + "/resumed/checkpoint.safetensors");
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& kv : a.tensors) {
    INFO(kv.first);
    REQUIRE(b.contains(kv.first));
    CHECK(kv.second.bytes == b.at(kv.first).bytes);  // bitwise
  }
  CHECK(a.metadata.at("state") != "");
  // Same step, RNG offset, data position and Adam steps; only the wall time differs.
  auto strip_time = [](std::string s) { return s.substr(0, s.find("\"elapsed_s\"")) + s.substr(s.find(",\"loader\"")); };
  CHECK(strip_time(a.metadata.at("state")) == strip_time(b.metadata.at("state")));
  const auto wa = load_safetensors(dir.path() + "/straight/model.safetensors");
  const auto wb = load_safetensors(dir.path() + "/resumed/model.safetensors");
  for (const auto& kv : wa.tensors) CHECK(kv.second.bytes == wb.at(kv.first).bytes);
  // The resumed run's metrics log has each step once.
  std::ifstream log(dir.path() + "/resumed/metrics.csv");
  std::string line;
  std::getline(log, line);
  std::vector<long> steps;
  while (std::getline(log, line)) steps.push_back(std::stol(line));
  // Every 3 steps, plus the step the first invocation stopped at.
  CHECK(steps == std::vector<long>{3, 5, 6, 9, 12});
}

TEST_CASE("train: the loss falls on a small fixed dataset, and the run folder is complete", "[train]") {
  TempDir dir("dd_train_loss");
  const std::string data = write_tiny_idx(dir);
  auto o = tiny_options(data, dir.path() + "/run");
  o.steps = 60;
  o.log_every = 10;
  o.timesteps = 50;
  o.sample_every = 30;
  const auto summary = ddpm::train(o, {}, quiet());
  CHECK(summary.end_step == 60);
  std::ifstream log(dir.path() + "/run/metrics.csv");
  std::string line;
  std::getline(log, line);
  std::vector<double> losses;
  while (std::getline(log, line)) losses.push_back(std::stod(line.substr(line.find(',') + 1)));
  REQUIRE(losses.size() == 6);
  // Mean Huber loss over steps 51-60 well below steps 1-10 (measured ~0.5 -> ~0.1).
  CHECK(losses.back() < 0.6 * losses.front());
  namespace fs = std::filesystem;
  for (const char* f : {"model.safetensors", "checkpoint.safetensors", "metrics.csv", "loss_curve.png", "config.json",
                        "samples/step_0000030.png", "samples/step_0000060.png"})
    CHECK(fs::exists(dir.path() + "/run/" + f));
}

TEST_CASE("train: bad flags and data give errors naming them, a run is never overwritten", "[train]") {
  TempDir dir("dd_train_errors");
  const std::string data = write_tiny_idx(dir);
  auto o = tiny_options(data, dir.path() + "/run");
  o.steps = 2;
  ddpm::train(o, {}, quiet());
  const auto before = load_safetensors(dir.path() + "/run/checkpoint.safetensors");
  // Same folder without --resume: refused.
  REQUIRE_THROWS_WITH(ddpm::train(o, {}, quiet()), Contains("--resume") && Contains("checkpoint.safetensors"));
  // --resume with a changed model flag: refused, naming the flag.
  auto r = o;
  r.resume = true;
  r.dim = 16;
  REQUIRE_THROWS_WITH(ddpm::train(r, {"dim"}, quiet()), Contains("--dim") && Contains("keeps its settings"));
  auto nothing = tiny_options(data, dir.path() + "/empty");
  nothing.resume = true;
  REQUIRE_THROWS_WITH(ddpm::train(nothing, {}, quiet()), Contains("no checkpoint"));
  const auto after = load_safetensors(dir.path() + "/run/checkpoint.safetensors");
  for (const auto& kv : before.tensors) CHECK(kv.second.bytes == after.at(kv.first).bytes);

  auto bad = tiny_options(data, dir.path() + "/bad");
  bad.loss = "l3";
  REQUIRE_THROWS_WITH(ddpm::train(bad, {}, quiet()), Contains("l3"));
  bad = tiny_options(data, dir.path() + "/bad");
  bad.beta_schedule = "exponential";
  REQUIRE_THROWS_WITH(ddpm::train(bad, {}, quiet()), Contains("exponential"));
  bad = tiny_options(data, dir.path() + "/bad");
  bad.dim_mults = {1, 2, 4, 8, 16};  // 8x8 images cannot be halved four times
  REQUIRE_THROWS_WITH(ddpm::train(bad, {}, quiet()), Contains("image_size 8"));
  bad = tiny_options(dir.path() + "/missing-images-idx3-ubyte", dir.path() + "/bad");
  REQUIRE_THROWS_WITH(ddpm::train(bad, {}, quiet()), Contains("missing-images-idx3-ubyte"));
  bad = tiny_options(data, dir.path() + "/bad");
  bad.batch_size = 100;
  REQUIRE_THROWS_WITH(ddpm::train(bad, {}, quiet()), Contains("--batch-size 100"));
}

TEST_CASE("sampling: grid images in [-1, 1], a trajectory strip, same seed -> same images", "[train][sample]") {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  Generator gen(2);
  models::Unet model(cfg, gen);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 12),
                                            kernels::LossType::Huber);
  ddpm::SampleRequest req;
  req.n = 5;
  req.image_size = 4;
  req.batch_size = 3;  // two batches, the second partial
  req.seed = 9;
  req.trajectory_frames = 4;
  req.progress_out = quiet();
  const auto a = ddpm::sample_images(model, diffusion, req);
  REQUIRE(a.images.shape() == Shape{5, 4, 4, 1});
  REQUIRE(a.trajectory.size() == 4);
  for (float v : a.images.to_vector()) CHECK((v >= -1.0f && v <= 1.0f));
  // The last frame is image 0 itself.
  const std::vector<float> all = a.images.to_vector();
  CHECK(a.trajectory.back().to_vector() == std::vector<float>(all.begin(), all.begin() + 16));
  const auto b = ddpm::sample_images(model, diffusion, req);
  CHECK(a.images.to_vector() == b.images.to_vector());
}

TEST_CASE("train: older states are kept, --resume skips a corrupted newest for the newest that verifies",
          "[train][durable]") {
  TempDir dir("dd_train_keep");
  const std::string data = write_tiny_idx(dir);
  auto straight = tiny_options(data, dir.path() + "/straight");
  straight.steps = 10;
  ddpm::train(straight, {}, quiet());

  auto part = tiny_options(data, dir.path() + "/kept");
  part.steps = 8;
  part.save_every = 2;
  part.keep_checkpoints = 3;
  ddpm::train(part, {}, quiet());
  const std::string newest = dir.path() + "/kept/checkpoint.safetensors";
  CHECK(ddpm::checkpoint_candidates(newest) ==
        std::vector<std::string>{newest, ddpm::checkpoint_step_path(newest, 6), ddpm::checkpoint_step_path(newest, 4)});
  {  // a flipped byte in the newest state's data
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  auto rest = tiny_options(data, dir.path() + "/kept");
  rest.steps = 10;
  rest.resume = true;
  std::FILE* log = std::tmpfile();
  const auto summary = ddpm::train(rest, {"steps"}, log);
  CHECK(summary.start_step == 6);
  CHECK(summary.end_step == 10);
  std::rewind(log);
  std::string text;
  for (int c; (c = std::fgetc(log)) != EOF;) text.push_back(static_cast<char>(c));
  std::fclose(log);
  CHECK_THAT(text, Catch::Contains("skipping " + newest) && Catch::Contains("corrupted") &&
                       Catch::Contains("resuming from " + ddpm::checkpoint_step_path(newest, 6)));
  // Resumed from step 6, the run ends where the uninterrupted one does, bit for bit.
  const auto a = load_safetensors(dir.path() + "/straight/model.safetensors");
  const auto b = load_safetensors(dir.path() + "/kept/model.safetensors");
  for (const auto& kv : a.tensors) CHECK(kv.second.bytes == b.at(kv.first).bytes);
  // A fresh run refuses a folder holding only older states.
  std::filesystem::remove(newest);
  auto again = tiny_options(data, dir.path() + "/kept");
  REQUIRE_THROWS_WITH(ddpm::train(again, {}, quiet()), Catch::Contains("pass --resume"));
}

TEST_CASE("train: --conv-autotune keeps its table in the run folder and a resumed run loads it", "[train][autotune]") {
  // On the CPU no tensor-core conv runs, so nothing is timed: the table's way in and out is what is
  // checked here (the tuning itself: tests/emu/test_emu_conv2d_tc_tune.cpp).
  TempDir dir("dd_train_autotune");
  const std::string data = write_tiny_idx(dir);
  auto o = tiny_options(data, dir.path() + "/run");
  o.steps = 2;
  o.conv_autotune = true;
  ddpm::train(o, {}, quiet());
  CHECK_FALSE(kernels::conv_autotune());  // the run's setting ends with it
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/run/conv_autotune.tsv"));  // nothing was tuned
  REQUIRE(ddpm::TrainOptions::from_json(ddpm::TrainOptions().to_json()).conv_autotune == false);
  REQUIRE(ddpm::TrainOptions::from_json(o.to_json()).conv_autotune == true);

  const std::string table = "fwd bf16 x1x2x3x4:f32 w5x3x3x4:f32 p1 cuda\tt2\t0.125\n";
  write_bytes(dir.path() + "/run/conv_autotune.tsv", std::vector<uint8_t>(table.begin(), table.end()));
  auto r = o;
  r.resume = true;
  r.steps = 3;
  kernels::clear_conv_autotune();
  ddpm::train(r, {"steps"}, quiet());
  // Loaded, then written back beside the checkpoint (loaded choices keep -1 for their time).
  CHECK(kernels::conv_autotune_table() == "fwd bf16 x1x2x3x4:f32 w5x3x3x4:f32 p1 cuda\tt2\t-1\n");
  std::ifstream in(dir.path() + "/run/conv_autotune.tsv");
  std::string line;
  std::getline(in, line);
  CHECK(line == "fwd bf16 x1x2x3x4:f32 w5x3x3x4:f32 p1 cuda\tt2\t-1");
  kernels::clear_conv_autotune();

  // A damaged table stops the resume, naming the file and the line.
  write_bytes(dir.path() + "/run/conv_autotune.tsv", std::vector<uint8_t>{'x', '\n'});
  r.steps = 4;
  REQUIRE_THROWS_WITH(ddpm::train(r, {"steps"}, quiet()), Contains("conv_autotune.tsv:1"));
  CHECK_FALSE(kernels::conv_autotune());
  // --conv-autotune is one of the flags a resumed run may change.
  r.conv_autotune = false;
  write_bytes(dir.path() + "/run/conv_autotune.tsv", std::vector<uint8_t>(table.begin(), table.end()));
  CHECK(ddpm::train(r, {"steps", "conv_autotune"}, quiet()).end_step == 4);
  CHECK(kernels::conv_autotune_table().empty());  // off: the table was not read
}

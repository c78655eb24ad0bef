// The whole training step on the GPU against the CPU backend: one small U-Net,
// built twice from the same seed (so the same weights), the same batch and the
// same generator seed (so the same timesteps and the same Philox noise), then
// forward, backward, clip, Adam and EMA on each device. Then 20 steps, and the
// sampler. Tolerances are stated beside each check.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "apps/ddpm/loss_ring.h"
#include "apps/ddpm/sampler.h"
#include "autograd/adam.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "models/diffusion.h"
#include "models/ema.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {

models::UnetConfig small_config(bool self_condition) {
  models::UnetConfig c;
  c.dim = 8;
  c.dim_mults = {1, 2, 2};  // three levels: linear attention at each, full attention in the middle
  c.channels = 3;
  c.resnet_block_groups = 4;
  c.attn_heads = 2;
  c.attn_dim_head = 16;
  c.self_condition = self_condition;
  return c;
}

// Everything one device needs for training steps.
struct Rig {
  Generator init{1234};
  models::Unet model;
  bool on_device;  // set once the weights are on dev, before the optimizer state is made
  std::vector<ag::Var> params;
  ag::Adam adam;
  models::Ema ema;
  Generator gen;
  Rig(const models::UnetConfig& cfg, Device dev, uint64_t seed)
      : model(cfg, init),
        on_device(move_to(model, dev)),
        params(model.params().vars()),
        adam(params, {1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f}),
        ema(params, ema_config()),
        gen(seed) {}
  static bool move_to(models::Unet& m, Device dev) {
    m.params().to(dev);
    return true;
  }
  static models::EmaConfig ema_config() {
    models::EmaConfig e;
    e.decay = 0.9;
    e.update_every = 1;
    e.update_after_step = 0;
    return e;
  }
  // One step; returns the loss. Gradients are kept (for the caller) until the next step.
  double step(const models::GaussianDiffusion& diffusion, const Tensor& x0, int64_t step_no) {
    adam.zero_grad();
    ag::Tape::current().clear();
    ag::Var loss = diffusion.p_losses(model, x0.to(model.params().device()), gen);
    const double lv = loss.value().item();
    ag::Tape::current().backward(loss);
    ag::clip_grad_norm(params, 1.0);
    adam.step();
    ema.update(step_no);
    return lv;
  }
};

// |a - e| <= abs_tol + rel_tol * max|e| for every element; NaN fails.
void expect_within(const std::string& what, const Tensor& actual, const Tensor& expected, double rel_tol,
                   double abs_tol) {
  const std::vector<float> a = actual.to_vector(), e = expected.to_vector();
  REQUIRE(a.size() == e.size());
  double emax = 0.0, worst = 0.0;
  for (float v : e) emax = std::max(emax, static_cast<double>(std::fabs(v)));
  bool finite = true;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) finite = false;
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - e[i]));
  }
  INFO(what << ": max |a - e| = " << worst << ", max |e| = " << emax << ", bound " << abs_tol + rel_tol * emax);
  CHECK(finite);
  CHECK(worst <= abs_tol + rel_tol * emax);
}

Tensor random_batch(Random& rng, int64_t B, int64_t S) {
  std::vector<double> v = rng.uniform(B * S * S * 3, -1.0, 1.0);
  return from_double({B, S, S, 3}, v);
}

}  // namespace

TEST_CASE("gpu: one training step (forward, backward, clip, Adam, EMA) matches the cpu", "[gpu][train_step]") {
  DD_TEST_RANDOM(rng);
  for (bool self_condition : {false, true}) {
    INFO("self_condition " << self_condition);
    const auto cfg = small_config(self_condition);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Sigmoid, 50),
                                              kernels::LossType::Huber);
    Rig cpu(cfg, Device::CPU, 77), gpu(cfg, Device::CUDA, 77);
    const Tensor x0 = random_batch(rng, 3, 12);  // 12x12: 12 -> 6 -> 3, odd at the bottom
    const double lc = cpu.step(diffusion, x0, 1), lg = gpu.step(diffusion, x0, 1);
    // The loss is a mean over the batch of a deep fp32 network's output: sums in another order.
    CHECK(lg == Approx(lc).epsilon(1e-4));
    const auto& pc = cpu.model.params().all();
    const auto& pg = gpu.model.params().all();
    REQUIRE(pc.size() == pg.size());
    for (std::size_t i = 0; i < pc.size(); ++i) {
      const std::string& name = pc[i].name;
      REQUIRE(pg[i].var.value().device() == Device::CUDA);
      // Gradients after backprop through the whole U-Net (a few hundred fp32 reductions, each
      // in another order on each side): 1e-3 of the tensor's largest gradient.
      REQUIRE(pc[i].var.has_grad());
      REQUIRE(pg[i].var.has_grad());
      expect_within("grad " + name, pg[i].var.grad().to(Device::CPU), pc[i].var.grad(), 1e-3, 0.0);
      // After Adam's first step each weight moved by lr * g / (|g| + eps), about lr * sign(g):
      // an element whose gradient is near zero may move either way on either side, so the bound
      // is 2 lr absolute plus fp32 rounding of the weights.
      expect_within("param " + name, pg[i].var.value().to(Device::CPU), pc[i].var.value(), 1e-6, 2.0 * 1e-4);
      expect_within("ema " + name, gpu.ema.shadow()[i].to(Device::CPU), cpu.ema.shadow()[i], 1e-6, 2.0 * 1e-4);
    }
  }
}

TEST_CASE("gpu: 20 training steps give the cpu's loss curve", "[gpu][train_step]") {
  DD_TEST_RANDOM(rng);
  const auto cfg = small_config(false);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Cosine, 100),
                                            kernels::LossType::L2);
  Rig cpu(cfg, Device::CPU, 5), gpu(cfg, Device::CUDA, 5);
  std::vector<Tensor> batches;
  for (int s = 0; s < 20; ++s) batches.push_back(random_batch(rng, 4, 8));
  double worst = 0.0;
  for (int s = 0; s < 20; ++s) {
    const double lc = cpu.step(diffusion, batches[s], s + 1), lg = gpu.step(diffusion, batches[s], s + 1);
    INFO("step " << s + 1 << ": cpu loss " << lc << ", gpu loss " << lg);
    REQUIRE(std::isfinite(lg));
    worst = std::max(worst, std::fabs(lg - lc) / std::fabs(lc));
    // Same draws, weights that drift apart by at most a few lr-sized Adam steps (lr 1e-4):
    // each step's loss within 1e-3 relative.
    CHECK(std::fabs(lg - lc) <= 1e-3 * std::fabs(lc));
  }
  WARN("20 steps: worst relative loss difference gpu vs cpu " << worst);
}

TEST_CASE("gpu: after the first step the training loop never calls cudaMalloc", "[gpu][train_step][allocator]") {
  DD_TEST_RANDOM(rng);
  // Without self-conditioning every step makes the same requests in the same order, so the
  // first step fills the cache (a second covers the optimizer's and EMA's first-use paths).
  const auto cfg = small_config(false);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 30));
  Rig gpu(cfg, Device::CUDA, 3);
  const Tensor x0 = random_batch(rng, 4, 8);
  for (int s = 1; s <= 2; ++s) gpu.step(diffusion, x0, s);
  if (const char* env = std::getenv("DD_CUDA_NO_CACHE"); env && *env && std::string(env) != "0") return;
  const cuda_mem::Stats before = cuda_mem::stats();
  for (int s = 3; s <= 10; ++s) gpu.step(diffusion, x0, s);
  const cuda_mem::Stats after = cuda_mem::stats();
  CHECK(after.device_mallocs == before.device_mallocs);
  // Every upload of a step (the batch, the timesteps, the schedule's coefficients) is asynchronous,
  // through pinned staging: none from pageable memory.
  CHECK(after.h2d_staged >= before.h2d_staged + 8);
  CHECK(after.h2d_pageable == before.h2d_pageable);
}

TEST_CASE("gpu: sampling chain matches the cpu", "[gpu][sample]") {
  const auto cfg = small_config(false);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 12));
  Generator init(9);
  models::Unet mc(cfg, init);
  Generator init2(9);
  models::Unet mg(cfg, init2);
  mg.params().to(Device::CUDA);
  ddpm::SampleRequest req;
  req.n = 3;
  req.image_size = 8;
  req.batch_size = 2;
  req.seed = 11;
  req.show_progress = false;
  req.trajectory_frames = 3;
  const auto rc = ddpm::sample_images(mc, diffusion, req);
  req.device = Device::CUDA;
  const auto rg = ddpm::sample_images(mg, diffusion, req);
  // 12 denoising steps of an untrained network with the same Philox noise on both sides; fp32
  // differences grow a little each step: 1e-3 of the image range.
  expect_within("images", rg.images, rc.images, 0.0, 1e-3);
  REQUIRE(rg.trajectory.size() == rc.trajectory.size());
  for (std::size_t i = 0; i < rc.trajectory.size(); ++i)
    expect_within("trajectory frame " + std::to_string(i), rg.trajectory[i], rc.trajectory[i], 0.0, 1e-3);
}

// The trainer's step on the GPU: the clip factor stays on the device, Adam applies it, the loss goes
// to the ring. Once the cache is warm, such a step makes no host synchronisation and no
// device-to-host copy; and it ends bitwise where the read-back path (clip_grad_norm's scale in
// place, then step()) ends on the same device.
TEST_CASE("gpu: the trainer's step makes no host sync and matches the read-back clip bitwise", "[gpu][train_step]") {
  DD_TEST_RANDOM(rng);
  const auto cfg = small_config(false);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 30));
  Rig ref(cfg, Device::CUDA, 5), fused(cfg, Device::CUDA, 5);
  ddpm::LossRing ring(Device::CUDA, 16);
  const Tensor x0 = random_batch(rng, 4, 8);
  auto fused_step = [&](int64_t step_no) {
    fused.adam.zero_grad();
    ag::Tape::current().clear();
    ag::Var loss = diffusion.p_losses(fused.model, x0.to(Device::CUDA), fused.gen);
    ag::Tape::current().backward(loss);
    fused.adam.step(ag::clip_grad_norm_factor(fused.params, 1.0));
    fused.ema.update(step_no);
    ring.push(loss.value());
  };
  std::vector<double> want;
  for (int64_t s = 1; s <= 2; ++s) {  // the cache's first requests, and the optimizer's first-use paths
    want.push_back(ref.step(diffusion, x0, s));
    fused_step(s);
  }
  if (const char* env = std::getenv("DD_CUDA_NO_CACHE"); !(env && *env && std::string(env) != "0")) {
    const cuda_mem::Stats before = cuda_mem::stats();
    for (int64_t s = 3; s <= 5; ++s) fused_step(s);
    const cuda_mem::Stats after = cuda_mem::stats();
    CHECK(after.host_syncs == before.host_syncs);
    CHECK(after.d2h_copies == before.d2h_copies);
    CHECK(after.device_mallocs == before.device_mallocs);
    CHECK(after.h2d_pageable == before.h2d_pageable);
  } else {
    for (int64_t s = 3; s <= 5; ++s) fused_step(s);
  }
  for (int64_t s = 3; s <= 5; ++s) want.push_back(ref.step(diffusion, x0, s));
  const std::vector<float> got = ring.drain();
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == static_cast<float>(want[i]));
  // Same kernels, same inputs, the clip multiply rounded alone on both paths: bitwise.
  for (std::size_t i = 0; i < ref.params.size(); ++i) {
    CHECK(fused.params[i].value().to_vector() == ref.params[i].value().to_vector());
    CHECK(fused.adam.exp_avg_sq()[i].to_vector() == ref.adam.exp_avg_sq()[i].to_vector());
  }
}

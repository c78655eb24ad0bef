// The parameter and gradient arenas on the GPU: the backward accumulates into the gradient arena in
// place, and Adam, the clip and the EMA over the flat buffers (one multi-tensor slot each) match the
// per-tensor path on the same device bitwise and the CPU within rounding.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "autograd/adam.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "kernels/multi_tensor.h"
#include "models/diffusion.h"
#include "models/ema.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
models::UnetConfig arena_config() {
  models::UnetConfig c;
  c.dim = 8;
  c.dim_mults = {1, 2};
  c.channels = 3;
  c.resnet_block_groups = 4;
  return c;
}

// A model, its optimizer and its EMA; flat: over the arenas (as the trainer), else per tensor.
struct ArenaRig {
  Generator init{77};
  models::Unet model;
  std::vector<ag::Var> params;
  ag::Adam adam;
  models::Ema ema;
  ArenaRig(Device dev, bool flat)
      : model(arena_config(), init),
        params(prepare(model, dev, flat)),
        adam(params, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, flat ? model.params().param_arena() : Tensor(),
             flat ? model.params().grad_arena() : Tensor()),
        ema(params, ema_config(), flat ? model.params().param_arena() : Tensor()) {}
  static std::vector<ag::Var> prepare(models::Unet& m, Device dev, bool flat) {
    m.params().to(dev);
    if (flat) m.params().zero_grad();
    return m.params().vars();
  }
  static models::EmaConfig ema_config() {
    models::EmaConfig e;
    e.decay = 0.9;
    e.update_every = 1;
    e.update_after_step = 0;
    return e;
  }
  void set_grads(const std::vector<Tensor>& host_grads) {
    for (std::size_t i = 0; i < params.size(); ++i) params[i].accumulate_grad(host_grads[i].to(params[i].value().device()));
  }
};

std::vector<Tensor> random_grads(const std::vector<ag::Var>& vs, Random& rng) {
  std::vector<Tensor> out;
  for (const ag::Var& v : vs) out.push_back(from_double(v.shape(), rng.normal_f32(v.value().numel(), 0.5)));
  return out;
}
}  // namespace

TEST_CASE("gpu: the backward accumulates into the gradient arena in place, bitwise the per-tensor gradients",
          "[gpu][arena]") {
  DD_TEST_RANDOM(rng);
  ArenaRig flat(Device::CUDA, true), ref(Device::CUDA, false);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 30));
  const Tensor x0 = from_double({2, 8, 8, 3}, rng.uniform(2 * 8 * 8 * 3, -1.0, 1.0), Device::CUDA);
  Generator gf(5), gr(5);
  for (int pass = 0; pass < 2; ++pass) {  // two backward passes: the second adds in place
    for (auto* r : {&flat, &ref}) {
      ag::Tape::current().clear();
      ag::Var loss = diffusion.p_losses(r->model, x0, r == &flat ? gf : gr);
      ag::Tape::current().backward(loss);
    }
  }
  ag::Tape::current().clear();
  const Tensor garena = flat.model.params().grad_arena();
  for (std::size_t i = 0; i < flat.params.size(); ++i) {
    INFO("parameter " << flat.model.params().all()[i].name);
    REQUIRE(flat.params[i].has_grad());
    CHECK(flat.params[i].grad().same_storage(garena));
    CHECK(flat.params[i].grad().to_vector() == ref.params[i].grad().to_vector());
  }
  flat.model.params().zero_grad();
  CHECK(garena.to_vector() == std::vector<float>(static_cast<std::size_t>(garena.numel()), 0.0f));
}

TEST_CASE("gpu: Adam, the clip and the EMA over the arenas match the per-tensor path and the cpu", "[gpu][arena]") {
  DD_TEST_RANDOM(rng);
  const uint64_t seed = rng.engine()();
  ArenaRig flat(Device::CUDA, true), ref(Device::CUDA, false), cpu(Device::CPU, true);
  Random grng(seed);
  for (int step = 1; step <= 4; ++step) {
    INFO("step " << step);
    const std::vector<Tensor> gs = random_grads(flat.params, grng);
    for (auto* r : {&flat, &ref, &cpu}) r->set_grads(gs);
    if (step <= 2) {
      // No clip: the same elementwise kernel over one slot or many, so bitwise.
      for (auto* r : {&flat, &ref, &cpu}) r->adam.step();
    } else {
      // The clip's norm sums the flat buffer in other chunks than per tensor: equal within rounding.
      const Tensor ff = ag::clip_grad_norm_factor(flat.params, 0.05, flat.model.params().grad_arena());
      const Tensor rf = ag::clip_grad_norm_factor(ref.params, 0.05);
      const Tensor cf = ag::clip_grad_norm_factor(cpu.params, 0.05, cpu.model.params().grad_arena());
      expect_close("clip factor vs per tensor", ff, rf, 1e-6);
      expect_close("clip factor vs cpu", ff, cf, 1e-5);
      flat.adam.step(ff);
      ref.adam.step(rf);
      cpu.adam.step(cf);
    }
    CHECK(flat.adam.last_step_flat());
    for (auto* r : {&flat, &ref, &cpu}) r->ema.update(step);
    for (std::size_t i = 0; i < flat.params.size(); ++i) {
      INFO("parameter " << flat.model.params().all()[i].name);
      if (step <= 2) {
        CHECK(flat.params[i].value().to_vector() == ref.params[i].value().to_vector());
        CHECK(flat.adam.exp_avg_sq()[i].to_vector() == ref.adam.exp_avg_sq()[i].to_vector());
        CHECK(flat.ema.shadow()[i].to_vector() == ref.ema.shadow()[i].to_vector());
      }
      // Adam moves each weight by about lr per step: compare at that scale.
      expect_close("weights vs cpu", flat.params[i].value(), cpu.params[i].value(), 1e-5, 1e-3);
      expect_close("ema vs cpu", flat.ema.shadow()[i], cpu.ema.shadow()[i], 1e-5, 1e-3);
    }
    for (auto* r : {&flat, &cpu}) r->model.params().zero_grad();
    ref.adam.zero_grad();
  }
}

TEST_CASE("gpu: a flat optimizer step allocates nothing and reads nothing back", "[gpu][arena]") {
  if (const char* env = std::getenv("DD_CUDA_NO_CACHE"); env && *env && std::string(env) != "0") return;
  DD_TEST_RANDOM(rng);
  ArenaRig flat(Device::CUDA, true);
  const std::vector<Tensor> gs = random_grads(flat.params, rng);
  std::vector<Tensor> dev_grads;
  for (const Tensor& g : gs) dev_grads.push_back(g.to(Device::CUDA));
  auto step = [&](int64_t s) {
    flat.model.params().zero_grad();
    for (std::size_t i = 0; i < flat.params.size(); ++i) flat.params[i].accumulate_grad(dev_grads[i]);
    flat.adam.step(ag::clip_grad_norm_factor(flat.params, 1.0, flat.model.params().grad_arena()));
    flat.ema.update(s);
  };
  step(1);
  step(2);
  const cuda_mem::Stats before = cuda_mem::stats();
  for (int64_t s = 3; s <= 5; ++s) step(s);
  const cuda_mem::Stats after = cuda_mem::stats();
  CHECK(flat.adam.last_step_flat());
  CHECK(after.host_syncs == before.host_syncs);
  CHECK(after.d2h_copies == before.d2h_copies);
  CHECK(after.device_mallocs == before.device_mallocs);
}

// A flat buffer larger than one table launch covers (320 chunks of 16384) still takes one launch:
// the flat kernels stride over it. Against the CPU backend.
TEST_CASE("gpu: flat single-tensor adam, ema, clip and scale over a 6M-element buffer match the cpu", "[gpu][arena]") {
  DD_TEST_RANDOM(rng);
  const Shape s{6000011};
  Tensor p = from_double(s, rng.normal(s[0], 1.0)), g = from_double(s, rng.normal(s[0], 1.0));
  Tensor m = from_double(s, rng.normal(s[0], 0.1)), v = from_double(s, rng.uniform(s[0], 0.0, 0.01));
  Tensor gp = p.to(Device::CUDA), gg = g.to(Device::CUDA), gm = m.to(Device::CUDA), gv = v.to(Device::CUDA);
  const auto sc = kernels::adam_scalars({2e-4f, 0.9f, 0.99f, 1e-8f, 0.01f}, 3);
  const Tensor cf = kernels::clip_coefficient_multi({g}, 0.5, Device::CPU);
  const Tensor gf = kernels::clip_coefficient_multi({gg}, 0.5, Device::CUDA);
  expect_close("clip factor", gf, cf, 1e-6);
  CHECK(kernels::sum_squares_multi({gg}) == Approx(kernels::sum_squares_multi({g})).epsilon(1e-12));
  kernels::adam_update_multi_scaled({{p, g, m, v}}, sc, cf);
  kernels::adam_update_multi_scaled({{gp, gg, gm, gv}}, sc, cf.to(Device::CUDA));
  expect_close("adam param", gp, p, 1e-6);
  expect_close("adam v", gv, v, 1e-6);
  Tensor shadow = from_double(s, rng.normal(s[0], 1.0));
  Tensor gshadow = shadow.to(Device::CUDA);
  kernels::ema_update_multi({shadow}, {p}, 0.01f);
  kernels::ema_update_multi({gshadow}, {gp}, 0.01f);
  expect_close("ema", gshadow, shadow, 1e-6);
  kernels::scale_multi_({g}, 0.37f);
  kernels::scale_multi_({gg}, 0.37f);
  expect_close("scale", gg, g, 0.0);
}

// The pieces a CUDA-graph training step stands on, checked on the CPU (no GPU here): the execution
// context, the device-read Philox offsets and Adam scalars, the device-seeded loss backward, the
// capture guards, and the replay protocol itself. A replay cannot run without a GPU; what can is
// the protocol's arithmetic: a step whose draws are offsets relative to a counter the host rewrites
// (Generator::anchor) and whose Adam scalars are read from memory the host rewrites must be the
// eager step, bit for bit. tests/gpu/test_graphs.cpp checks the replays themselves.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "apps/ddpm/options.h"
#include "apps/ddpm/train_step.h"
#include "autograd/adam.h"
#include "engine/context.h"
#include "engine/cuda_graph.h"
#include "engine/device.h"
#include "engine/rng.h"
#include "kernels/diffusion.h"
#include "kernels/loss.h"
#include "kernels/multi_tensor.h"
#include "kernels/timesteps.h"
#include "models/ddim.h"
#include "models/ddpm_sampler.h"
#include "models/diffusion.h"
#include "models/dpm_solver.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
models::UnetConfig tiny_config(bool self_condition) {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  cfg.self_condition = self_condition;
  return cfg;
}

uint64_t* counter(Tensor& t) { return static_cast<uint64_t*>(t.raw_data()); }
}  // namespace

TEST_CASE("context: a scope makes its context current and restores the previous one", "[context]") {
  Context& base = current_context();
  CHECK(&base == &default_context());
  Context a(0), b(0);
  a.set_precision(Precision::TF32);
  {
    ContextScope sa(a);
    CHECK(&current_context() == &a);
    CHECK(current_context().precision() == Precision::TF32);
    {
      ContextScope sb(b);
      CHECK(&current_context() == &b);
      CHECK(current_context().precision() == Precision::FP32);
    }
    CHECK(&current_context() == &a);
  }
  CHECK(&current_context() == &base);
  CHECK(std::string(precision_name(Precision::BF16)) == "bf16");
  REQUIRE_THROWS_WITH(Context(-1), Catch::Contains("device ordinal -1"));
}

TEST_CASE("context: a memory pool scope switches the current context's pool and back", "[context]") {
  const int before = current_context().pool();
  {
    cuda_mem::PoolScope scope(7);
    if (cuda_built()) CHECK(current_context().pool() == 7);
  }
  CHECK(current_context().pool() == before);
}

TEST_CASE("context: while capturing, host copies and synchronizations throw before reaching the driver",
          "[context]") {
  if (!cuda_built()) return;  // the guard lives in the CUDA backend
  struct Capturing {
    Capturing() { current_context().set_capturing(true); }
    ~Capturing() { current_context().set_capturing(false); }
  };
  float host = 1.0f, dev_dummy = 0.0f;
  Capturing on;
  REQUIRE_THROWS_WITH(cuda_mem::copy_h2d(&dev_dummy, &host, sizeof host),
                      Catch::Contains("a host-to-device copy inside a captured CUDA graph"));
  REQUIRE_THROWS_WITH(cuda_mem::copy_d2h(&host, &dev_dummy, sizeof host),
                      Catch::Contains("a device-to-host copy inside a captured CUDA graph"));
  REQUIRE_THROWS_WITH(cuda_mem::synchronize(), Catch::Contains("a stream synchronization inside a captured"));
}

TEST_CASE("philox offset: a draw relative to a counter equals the plain draw at counter + value", "[rng]") {
  DD_TEST_RANDOM(rng);
  Tensor base = Tensor::zeros({1}, Device::CPU, DType::I64);
  *counter(base) = 1000 + static_cast<uint64_t>(rng.uniform_int(0, 1 << 20));
  const uint64_t seed = 77, rel = 13;
  const PhiloxOffset at(rel, counter(base));
  CHECK(at.get() == *counter(base) + rel);
  CHECK(kernels::draw_timesteps(9, 1000, seed, at, Device::CPU).to_vector() ==
        kernels::draw_timesteps(9, 1000, seed, *counter(base) + rel, Device::CPU).to_vector());
  const Tensor x0 = from_double({3, 5, 5, 1}, rng.uniform(75, -1.0, 1.0));
  const Tensor a = Tensor::full({3}, 0.7f), b = Tensor::full({3}, 0.3f);
  const auto q1 = kernels::q_sample_philox(x0, a, b, seed, at);
  const auto q2 = kernels::q_sample_philox(x0, a, b, seed, *counter(base) + rel);
  CHECK(q1.x_t.to_vector() == q2.x_t.to_vector());
  CHECK(q1.noise.to_vector() == q2.noise.to_vector());
}

TEST_CASE("generator: anchored, it hands out offsets relative to the counter and advances as before", "[rng]") {
  Generator plain(5, 40), anchored(5, 40);
  uint64_t base = 40;
  anchored.anchor(&base);
  const PhiloxOffset t = anchored.skip_at(6), n = anchored.reserve_at(10);
  CHECK(t.base == &base);
  CHECK(t.value == 0);
  CHECK(n.value == 6);
  CHECK(plain.skip(6) == t.get());
  CHECK(plain.reserve(10) == n.get());
  CHECK(anchored.offset() == plain.offset());
  anchored.unanchor();
  CHECK(anchored.reserve_at(4).base == nullptr);
}

TEST_CASE("loss backward: the device-seeded form (dloss as a tensor) equals the float form bitwise", "[loss]") {
  DD_TEST_RANDOM(rng);
  const Shape shape{2, 3, 5, 1};
  const Tensor p = from_double(shape, rng.uniform(30, -2.0, 2.0)), t = from_double(shape, rng.uniform(30, -2.0, 2.0));
  for (auto type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
    const float dloss = static_cast<float>(rng.uniform(1, 0.1, 3.0)[0]);
    CHECK(kernels::loss_backward(p, t, type, Tensor::full({}, dloss)).to_vector() ==
          kernels::loss_backward(p, t, type, dloss).to_vector());
  }
  REQUIRE_THROWS_WITH(kernels::loss_backward(p, t, kernels::LossType::L2, Tensor::full({2}, 1.0f)),
                      Catch::Contains("dloss must be one float"));
}

TEST_CASE("adam: bound to step scalars in memory, the update is the unbound update bitwise", "[adam]") {
  DD_TEST_RANDOM(rng);
  Generator g1(3), g2(3);
  models::Unet m1(tiny_config(false), g1), m2(tiny_config(false), g2);
  m1.params().zero_grad();
  m2.params().zero_grad();
  const auto v1 = m1.params().vars(), v2 = m2.params().vars();
  ag::Adam a1(v1, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f}, m1.params().param_arena(), m1.params().grad_arena());
  ag::Adam a2(v2, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f}, m2.params().param_arena(), m2.params().grad_arena());
  Tensor scalars = kernels::adam_step_scalars_tensor(Device::CPU);
  a2.bind_step_scalars(scalars);
  for (int step = 0; step < 3; ++step) {
    for (std::size_t i = 0; i < v1.size(); ++i) {  // gradients land in the arenas, as a backward's do
      const Tensor g = from_double(v1[i].shape(), rng.uniform(v1[i].value().numel(), -1.0, 1.0));
      v1[i].accumulate_grad(g.clone());
      v2[i].accumulate_grad(g.clone());
    }
    kernels::write_adam_step_scalars(scalars, a2.next_step_scalars());
    if (step == 1) {
      const Tensor factor = Tensor::from_vector({2}, {0.25f, 0.0f});
      a1.step(factor);
      a2.step(factor);
    } else {
      a1.step();
      a2.step();
    }
    CHECK(a2.last_step_flat());
    REQUIRE(m1.params().param_arena().to_vector() == m2.params().param_arena().to_vector());
    CHECK(a1.param_steps() == a2.param_steps());
    m1.params().zero_grad();
    m2.params().zero_grad();
  }
  a2.unbind_step_scalars();
}

TEST_CASE("graph step protocol: anchored draws and device-read Adam scalars give the eager steps bitwise",
          "[train][graphs]") {
  // What a replay computes: every draw at (counter + the offset captured relative to it) and Adam's
  // scalars from memory, both rewritten by the host before the step. Run here by re-running the
  // step's host code each time with the relative offsets the capture would freeze.
  for (bool self_condition : {false, true}) {
    INFO("self_condition " << self_condition);
    DD_TEST_RANDOM(rng);
    Generator i1(11), i2(11);
    models::Unet eager_model(tiny_config(self_condition), i1), graph_model(tiny_config(self_condition), i2);
    eager_model.params().zero_grad();
    graph_model.params().zero_grad();
    const auto ve = eager_model.params().vars(), vg = graph_model.params().vars();
    ag::Adam eager_adam(ve, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, eager_model.params().param_arena(),
                        eager_model.params().grad_arena());
    ag::Adam graph_adam(vg, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, graph_model.params().param_arena(),
                        graph_model.params().grad_arena());
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 30),
                                              kernels::LossType::Huber);
    Generator eager_gen(8), graph_gen(8);
    ddpm::TrainStepParts pe{&eager_model, &eager_model.params(), &diffusion, &eager_gen, &eager_adam, 0.5};
    ddpm::TrainStep eager(pe, Device::CPU, false);
    Tensor base = Tensor::zeros({1}, Device::CPU, DType::I64);
    Tensor scalars = kernels::adam_step_scalars_tensor(Device::CPU);
    int coins = 0;
    for (int step = 0; step < 5; ++step) {
      INFO("step " << step);
      const Tensor x0 = from_double({3, 8, 8, 1}, rng.uniform(3 * 64, -1.0, 1.0));
      const Tensor le = eager.run(x0);
      // The replayed step: the coin read ahead, the counter and the scalars written, then the body.
      const bool coin = diffusion.self_condition_coin(graph_model, x0, graph_gen);
      coins += coin;
      *counter(base) = graph_gen.offset();
      kernels::write_adam_step_scalars(scalars, graph_adam.next_step_scalars());
      graph_gen.anchor(counter(base));
      graph_adam.bind_step_scalars(scalars);
      models::LossDraw draw;
      ag::Var lg = diffusion.p_losses(graph_model, x0, graph_gen, &draw);
      CHECK(draw.self_conditioned == coin);
      ag::Tape::current().backward(lg);
      graph_adam.step(ag::clip_grad_norm_factor(vg, 0.5, graph_model.params().grad_arena()));
      graph_model.params().zero_grad();
      ag::Tape::current().clear();
      graph_gen.unanchor();
      graph_adam.unbind_step_scalars();
      CHECK(lg.value().item() == le.item());
      REQUIRE(graph_model.params().param_arena().to_vector() == eager_model.params().param_arena().to_vector());
      CHECK(graph_gen.offset() == eager_gen.offset());
    }
    if (self_condition) CHECK(coins > 0);
  }
}

TEST_CASE("cuda graphs flag: auto follows the device, on needs CUDA, anything else is refused", "[train][graphs]") {
  CHECK_FALSE(ddpm::resolve_cuda_graphs("auto", Device::CPU));
  CHECK_FALSE(ddpm::resolve_cuda_graphs("off", Device::CPU));
  CHECK(ddpm::resolve_cuda_graphs("auto", Device::CUDA) == cuda_graphs_supported());
  REQUIRE_THROWS_WITH(ddpm::resolve_cuda_graphs("on", Device::CPU), Catch::Contains("--cuda-graphs on needs --device cuda"));
  REQUIRE_THROWS_WITH(ddpm::resolve_cuda_graphs("yes", Device::CPU), Catch::Contains("--cuda-graphs must be on, off or auto"));
  models::Unet* none = nullptr;
  REQUIRE_THROWS_WITH(ddpm::TrainStep(ddpm::TrainStepParts{none, nullptr, nullptr, nullptr, nullptr, 0.0}, Device::CPU, false),
                      Catch::Contains("every part is required"));
}

TEST_CASE("sampler step with its timestep in memory equals p_sample at that timestep bitwise", "[diffusion][graphs]") {
  for (bool self_condition : {false, true}) {
    INFO("self_condition " << self_condition);
    DD_TEST_RANDOM(rng);
    Generator init(4);
    models::Unet model(tiny_config(self_condition), init);
    const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Cosine, 50),
                                              kernels::LossType::L2);
    const Tensor x = from_double({2, 8, 8, 1}, rng.uniform(128, -1.5, 1.5));
    const Tensor sc = self_condition ? from_double({2, 8, 8, 1}, rng.uniform(128, -1.0, 1.0)) : Tensor();
    for (int t : {1, 17, 49}) {
      INFO("t " << t);
      Generator g1(31, 7), g2(31, 7);
      Tensor x0a, x0b;
      const Tensor a = diffusion.p_sample(model, x, t, g1, &x0a, sc);
      Tensor t_mem = Tensor::full({1}, static_cast<float>(t));
      const Tensor b = diffusion.p_sample_device_t(model, x, t_mem, g2, &x0b, sc);
      CHECK(a.to_vector() == b.to_vector());
      CHECK(x0a.to_vector() == x0b.to_vector());
      CHECK(g1.offset() == g2.offset());
    }
  }
}

TEST_CASE("broadcast_timestep: B copies of the one float, bad operands refused", "[timesteps]") {
  CHECK(kernels::broadcast_timestep(Tensor::full({1}, 7.0f), 3).to_vector() == std::vector<float>{7.0f, 7.0f, 7.0f});
  REQUIRE_THROWS_WITH(kernels::broadcast_timestep(Tensor::full({2}, 1.0f), 3), Catch::Contains("must be one float"));
  REQUIRE_THROWS_WITH(kernels::broadcast_timestep(Tensor::full({1}, 1.0f), 0), Catch::Contains("batch size 0"));
}

TEST_CASE("sampler chains: every draw is anchored, so a chain run relative to a counter is the eager chain",
          "[graphs][sampler]") {
  // What a replayed chain graph relies on (apps/ddpm/chain_graph.h): with the generator anchored to a
  // counter holding its offset, each draw of the chain (x_T, DDIM's and DDPM's noise) is taken
  // relative to that counter. Run on the CPU with a host counter, the chain must equal the eager one.
  Generator init(4);
  models::Unet unet(tiny_config(true), init);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 30),
                                            kernels::LossType::L1, models::Objective::PredV);
  const Shape shape{2, 8, 8, 1};
  for (int which = 0; which < 3; ++which) {
    INFO("sampler " << which);
    auto chain = [&](Generator& g) {
      models::DdimOptions d;
      d.steps = 5;
      d.eta = 0.7;
      models::DpmSolverOptions p;
      p.steps = 4;
      models::DdpmOptions q;
      q.steps = 6;
      return which == 0   ? models::ddim_sample_loop(diffusion, unet, shape, g, d)
             : which == 1 ? models::dpm_solver_sample_loop(diffusion, unet, shape, g, p)
                          : models::ddpm_sample_loop(diffusion, unet, shape, g, q);
    };
    Generator eager(9, 100), anchored(9, 100);
    const Tensor a = chain(eager);
    uint64_t base = 100;
    anchored.anchor(&base);
    const Tensor b = chain(anchored);
    anchored.unanchor();
    CHECK(a.to_vector() == b.to_vector());
    CHECK(anchored.offset() == eager.offset());
    // Moving the counter moves every draw: the same chain from another position differs.
    Generator moved(9, 100);
    base = 500;
    moved.anchor(&base);
    CHECK(chain(moved).to_vector() != a.to_vector());
  }
}

// The kernels a captured CUDA-graph step reads its per-step values through (issue 11): the Philox
// draws at an offset relative to a counter in memory, Adam's scalars from memory, the loss backward
// seeded by a one-float tensor. Each is compared with the CPU backend given the plain values, and
// each reads the memory at run time: rewriting it between two runs changes the result.
#include <catch2/catch.hpp>

#include <cstring>

#include "tests/emu/emu_ops.h"
#include "tests/emu/emu_test_util.h"

using namespace dd;
using namespace dd::test;
using namespace dd::emu_test;

namespace {
uint64_t* counter(Tensor& t) { return static_cast<uint64_t*>(t.raw_data()); }
}  // namespace

TEST_CASE("emu: draws at a counter-relative offset equal the cpu's draws at counter + value", "[emu][graphs]") {
  DD_TEST_RANDOM(rng);
  Tensor base = Tensor::zeros({1}, Device::CPU, DType::I64);
  const Shape s{3, 5, 7, 1};
  const Tensor x = rnd(rng, s), e = rnd(rng, s), a = uni(rng, {3}, 0.1, 1.0), b = uni(rng, {3}, 0.1, 1.0);
  kernels::PSampleCoefs c;
  c.sqrt_recip_alpha = uni(rng, {3}, 1.0, 1.1);
  c.beta = uni(rng, {3}, 0.0, 0.02);
  c.sqrt_one_minus_ac = uni(rng, {3}, 0.1, 1.0);
  c.sigma = uni(rng, {3}, 0.0, 0.1);
  const uint64_t seed = rng.engine()(), rel = 5;
  for (uint64_t start : {uint64_t{0}, uint64_t{4096}, (uint64_t{1} << 33) + 3}) {
    INFO("counter " << start);
    *counter(base) = start;  // rewritten between runs, as the host does before each replay
    const PhiloxOffset at(rel, counter(base));
    CHECK(kernels::emu::draw_timesteps(300, 1000, seed, at, Device::CPU).to_vector() ==
          kernels::cpu::draw_timesteps(300, 1000, seed, start + rel, Device::CPU).to_vector());  // integers: bitwise
    const kernels::QSampleOut qe = kernels::emu::q_sample_philox(x, a, b, seed, at);
    const kernels::QSampleOut qc = kernels::cpu::q_sample_philox(x, a, b, seed, start + rel);
    // The same counters, Box-Muller in double rounded once: 1e-6 (as the plain-offset test).
    expect_close("q_sample_philox noise", qe.noise, qc.noise, 1e-6);
    expect_close("q_sample_philox x_t", qe.x_t, qc.x_t, 1e-5, 1.0);
    expect_close("p_sample_step_philox", kernels::emu::p_sample_step_philox(x, e, c, seed, at),
                 kernels::cpu::p_sample_step_philox(x, e, c, seed, start + rel), 1e-5, 1.0);
  }
}

TEST_CASE("emu: adam reading its step scalars from memory equals adam given them", "[emu][graphs][multi_tensor]") {
  DD_TEST_RANDOM(rng);
  for (bool flat : {true, false}) {
    INFO("flat " << flat);
    const std::vector<Shape> shapes = flat ? std::vector<Shape>{{4099}} : std::vector<Shape>{{37}, {5, 3}, {1025}};
    std::vector<kernels::AdamSlot> cs, es;
    for (const Shape& s : shapes) {
      Tensor p = rnd(rng, s), g = rnd(rng, s), m = rnd(rng, s, 0.1), v = uni(rng, s, 0.0, 0.01);
      cs.push_back({p, g, m, v});
      es.push_back({copy(p), g, copy(m), copy(v)});
    }
    Tensor scalars = kernels::adam_step_scalars_tensor(Device::CPU);
    const Tensor factor = Tensor::from_vector({2}, {0.75f, 0.0f});
    for (int64_t step : {1, 2, 9}) {
      const kernels::AdamStepScalars sc = kernels::adam_scalars({3e-4f, 0.9f, 0.999f, 1e-8f, 0.01f}, step);
      kernels::write_adam_step_scalars(scalars, sc);
      // The by-value scalars handed to the emulated kernel are a stale step's: it must read memory.
      const kernels::AdamStepScalars stale = kernels::adam_scalars({3e-4f, 0.9f, 0.999f, 1e-8f, 0.01f}, 100);
      kernels::cpu::adam_update_multi_scaled(cs, sc, factor);
      kernels::emu::adam_update_multi_scaled(es, stale, factor, scalars);
      for (std::size_t i = 0; i < shapes.size(); ++i) {
        // The same fp32 expressions: 1e-6 (as the by-value test).
        expect_close("param " + std::to_string(i), es[i].param, cs[i].param, 1e-6);
        expect_close("v " + std::to_string(i), es[i].v, cs[i].v, 1e-6);
      }
    }
  }
}

TEST_CASE("emu: the loss backward seeded by a one-float tensor equals the float-seeded cpu backward", "[emu][graphs][loss]") {
  DD_TEST_RANDOM(rng);
  const Shape s{2, 3, 3, 5};
  const Tensor p = rnd(rng, s, 1.5), t = rnd(rng, s);
  for (kernels::LossType type : {kernels::LossType::L1, kernels::LossType::L2, kernels::LossType::Huber}) {
    for (float dloss : {1.0f, 0.37f}) {
      INFO(kernels::loss_type_name(type) << " dloss " << dloss);
      // The scale factors computed in the kernel with the CPU's expressions: bitwise.
      expect_close("backward", kernels::emu::loss_backward(p, t, type, Tensor::full({}, dloss)),
                   kernels::cpu::loss_backward(p, t, type, dloss), 0.0);
    }
  }
}

TEST_CASE("emu: broadcast_timestep reads its timestep from memory", "[emu][graphs][timesteps]") {
  Tensor t = Tensor::full({1}, 3.0f);
  for (int64_t B : {1, 5, 300}) {
    t.data()[0] = static_cast<float>(B) + 0.5f;
    CHECK(kernels::emu::broadcast_timestep(t, B).to_vector() == kernels::cpu::broadcast_timestep(t, B).to_vector());
  }
}

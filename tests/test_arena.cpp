// The parameter and gradient arenas (models::ParamSet): every value and gradient is a view into one
// flat buffer, gradients accumulate there in place, zero_grad clears it, and Adam, the EMA and the
// clip over the flat buffers give the bits the per-tensor path gives.
#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/adam.h"
#include "autograd/elementwise.h"
#include "models/diffusion.h"
#include "models/ema.h"
#include "models/params.h"
#include "models/unet.h"
#include "tests/support/compare.h"

using namespace dd;
using namespace dd::test;

namespace {
models::UnetConfig tiny_config() {
  models::UnetConfig cfg;
  cfg.dim = 8;
  cfg.dim_mults = {1, 2};
  cfg.channels = 1;
  return cfg;
}

// Every parameter's tensor (value or gradient) is the next window of arena, in order.
void check_tiles(const Tensor& arena, const std::vector<Tensor>& parts) {
  REQUIRE(arena.defined());
  int64_t off = arena.storage_offset();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    INFO("parameter " << i);
    REQUIRE(parts[i].same_storage(arena));
    CHECK(parts[i].storage_offset() == off);
    off += parts[i].numel();
  }
  CHECK(off == arena.storage_offset() + arena.numel());
}

std::vector<Tensor> values(const std::vector<ag::Var>& vs) {
  std::vector<Tensor> out;
  for (const ag::Var& v : vs) out.push_back(v.value());
  return out;
}

// One random gradient per parameter (float32-representable), the same for every model given the seed.
std::vector<Tensor> random_grads(const std::vector<ag::Var>& vs, Random& rng) {
  std::vector<Tensor> out;
  for (const ag::Var& v : vs) out.push_back(from_double(v.shape(), rng.normal_f32(v.value().numel(), 0.5)));
  return out;
}
}  // namespace

TEST_CASE("arena: every parameter of the U-Net is a view into one parameter arena", "[arena]") {
  Generator gen(3);
  models::Unet model(tiny_config(), gen);
  models::ParamSet& ps = model.params();
  const Tensor arena = ps.param_arena();
  REQUIRE(arena.numel() == ps.numel());
  REQUIRE(arena.shape() == Shape{ps.numel()});
  check_tiles(arena, values(ps.vars()));

  // Writes through the arena are read through the Var, and the other way round.
  const models::Parameter& p = ps.at("final_conv.weight");
  const int64_t off = p.var.value().storage_offset() - arena.storage_offset();
  Tensor a = arena;
  a.data()[off + 1] = 42.5f;
  CHECK(p.var.value().to_vector()[1] == 42.5f);
  ag::Var handle = p.var;
  handle.value().data()[2] = -7.25f;
  CHECK(arena.to_vector()[off + 2] == -7.25f);
}

TEST_CASE("arena: registering keeps values, pack() moves them into the arena unchanged", "[arena]") {
  models::ParamSet ps;
  ag::Var a = ps.add("a", {2, 3});
  ag::Var b = ps.add("b", {4});
  a.value().copy_from(Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}));
  b.value().copy_from(Tensor::from_vector({4}, {7, 8, 9, 10}));
  const auto before = ps.state_dict();
  ps.pack();
  check_tiles(ps.param_arena(), {a.value(), b.value()});
  CHECK(ps.param_arena().to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  const auto after = ps.state_dict();
  REQUIRE(after.size() == before.size());
  for (const auto& kv : before) CHECK(after.at(kv.first).to_vector() == kv.second.to_vector());
  // A parameter added later joins the arena at the next pack.
  ag::Var c = ps.add("c", {1});
  c.value().fill_(11.0f);
  CHECK(ps.param_arena().numel() == 11);
  check_tiles(ps.param_arena(), {a.value(), b.value(), c.value()});
  CHECK(ps.param_arena().to_vector().back() == 11.0f);
}

TEST_CASE("arena: gradients accumulate in place in the gradient arena, zero_grad clears it", "[arena]") {
  models::ParamSet ps;
  ag::Var a = ps.add("a", {3});
  ag::Var b = ps.add("b", {2});
  ag::Var unused = ps.add("unused", {2});
  a.value().copy_from(Tensor::from_vector({3}, {1, 2, 3}));
  b.value().copy_from(Tensor::from_vector({2}, {4, 5}));
  ps.zero_grad();
  const Tensor garena = ps.grad_arena();
  REQUIRE(garena.numel() == 7);
  check_tiles(garena, {a.grad_buffer(), b.grad_buffer(), unused.grad_buffer()});

  const ag::Var x(Tensor::from_vector({3}, {0.5f, -1.0f, 2.0f}));
  auto backward = [&] {
    ag::Tape::current().clear();
    // d/da sum(a * x) = x; d/db sum(3 b) = 3, twice (b appears in two terms).
    ag::Var loss = ag::add(ag::sum(ag::mul(a, x)), ag::add(ag::sum(ag::affine(b, 3.0f, 0.0f)),
                                                           ag::sum(ag::affine(b, 3.0f, 0.0f))));
    ag::Tape::current().backward(loss);
  };
  backward();
  CHECK(garena.to_vector() == std::vector<float>{0.5f, -1.0f, 2.0f, 6.0f, 6.0f, 0.0f, 0.0f});
  CHECK(a.grad().same_storage(garena));
  CHECK(b.grad().same_storage(garena));
  CHECK(a.has_grad());
  CHECK_FALSE(unused.has_grad());  // no gradient reached it: Adam must skip it
  backward();  // a second pass adds in place
  CHECK(garena.to_vector() == std::vector<float>{1.0f, -2.0f, 4.0f, 12.0f, 12.0f, 0.0f, 0.0f});
  CHECK(a.grad().same_storage(garena));

  ps.zero_grad();
  CHECK(garena.to_vector() == std::vector<float>(7, 0.0f));
  CHECK_FALSE(a.has_grad());
  CHECK_FALSE(b.has_grad());
  CHECK(ps.grad_arena().same_storage(garena));  // the same buffer, cleared, not a new one
  ag::Tape::current().clear();
}

TEST_CASE("arena: a gradient buffer never shares the incoming tensor, and in-place ops reach the arena", "[arena]") {
  models::ParamSet ps;
  ag::Var a = ps.add("a", {2});
  ps.zero_grad();
  Tensor g = Tensor::from_vector({2}, {1.0f, 2.0f});
  a.accumulate_grad(g);
  CHECK_FALSE(a.grad().same_storage(g));  // copied into the arena
  g.fill_(100.0f);                         // the producer reusing its tensor leaves the gradient alone
  CHECK(a.grad().to_vector() == std::vector<float>{1.0f, 2.0f});
  Tensor& mg = a.mutable_grad();           // no copy-on-write: the view is the variable's own
  CHECK(mg.same_storage(ps.grad_arena()));
  mg.fill_(3.0f);
  CHECK(ps.grad_arena().to_vector() == std::vector<float>{3.0f, 3.0f});
  // clip_grad_norm scales the arena in place.
  const double norm = ag::clip_grad_norm({a}, 1.0, ps.grad_arena());
  CHECK(norm == Approx(std::sqrt(18.0)));
  CHECK(ps.grad_arena().to_vector()[0] == Approx(3.0 / (std::sqrt(18.0) + 1e-6)));
  REQUIRE_THROWS_WITH(a.attach_grad_buffer(Tensor::zeros({3})), Catch::Contains("does not match value"));
}

TEST_CASE("arena: ParamSet::to(cpu) keeps the aliasing and the gradient arena", "[arena]") {
  Generator gen(5);
  models::Unet model(tiny_config(), gen);
  models::ParamSet& ps = model.params();
  ps.zero_grad();
  const auto before = ps.state_dict();
  ps.to(Device::CPU);
  check_tiles(ps.param_arena(), values(ps.vars()));
  std::vector<Tensor> bufs;
  for (const ag::Var& v : ps.vars()) {
    bufs.push_back(v.grad_buffer());
    CHECK_FALSE(v.has_grad());
  }
  check_tiles(ps.grad_arena(), bufs);
  const auto after = ps.state_dict();
  for (const auto& kv : before) CHECK(after.at(kv.first).to_vector() == kv.second.to_vector());
}

TEST_CASE("arena: the state dict round trip is unchanged (names, PyTorch layouts, values)", "[arena]") {
  Generator g1(7), g2(8);
  models::Unet a(tiny_config(), g1), b(tiny_config(), g2);
  const auto sd = a.params().state_dict();
  for (const auto& p : a.params().all()) {
    REQUIRE(sd.count(p.name));
    const Shape& s = p.var.shape();
    CHECK(sd.at(p.name).shape() == (p.kind == models::ParamKind::ConvWeight ? Shape{s[0], s[3], s[1], s[2]} : s));
    CHECK_FALSE(sd.at(p.name).same_storage(a.params().param_arena()));  // copies, not views
  }
  b.params().load_state_dict(sd, "a's weights");
  check_tiles(b.params().param_arena(), values(b.params().vars()));  // loaded in place
  CHECK(b.params().param_arena().to_vector() == a.params().param_arena().to_vector());
  const auto back = b.params().state_dict();
  REQUIRE(back.size() == sd.size());
  for (const auto& kv : sd) CHECK(back.at(kv.first).to_vector() == kv.second.to_vector());
}

TEST_CASE("arena: Adam, the clip and the EMA over the flat buffers equal the per-tensor path bitwise", "[arena][adam]") {
  DD_TEST_RANDOM(rng);
  const uint64_t seed = rng.engine()();
  Generator g1(11), g2(11);
  models::Unet flat_model(tiny_config(), g1), ref_model(tiny_config(), g2);
  models::ParamSet& fp = flat_model.params();
  fp.zero_grad();
  const std::vector<ag::Var> fv = fp.vars(), rv = ref_model.params().vars();
  const kernels::AdamHyper hyper{1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f};
  ag::Adam flat(fv, hyper, fp.param_arena(), fp.grad_arena()), ref(rv, hyper);
  models::EmaConfig ec;
  ec.decay = 0.9;
  ec.update_every = 1;
  ec.update_after_step = 0;
  models::Ema flat_ema(fv, ec, fp.param_arena()), ref_ema(rv, ec);

  Random grads_rng(seed);
  for (int step = 1; step <= 5; ++step) {
    INFO("step " << step);
    const std::vector<Tensor> gs = random_grads(fv, grads_rng);
    // Step 3 leaves one parameter without a gradient: Adam skips it, so its step count falls
    // behind and the flat path must give way to the per-tensor one (and still agree).
    const std::size_t skip = step == 3 ? 1 : fv.size();
    for (std::size_t i = 0; i < fv.size(); ++i) {
      if (i == skip) continue;
      fv[i].accumulate_grad(gs[i]);
      rv[i].accumulate_grad(gs[i]);
    }
    // Tiny max_norm: the clip always scales. Odd steps use the in-place clip, even ones the factor.
    if (step % 2) {
      const double fn = ag::clip_grad_norm(fv, 0.05, fp.grad_arena());
      const double rn = ag::clip_grad_norm(rv, 0.05);
      CHECK(fn == rn);
      flat.step();
      ref.step();
    } else {
      const Tensor ff = ag::clip_grad_norm_factor(fv, 0.05, fp.grad_arena());
      const Tensor rf = ag::clip_grad_norm_factor(rv, 0.05);
      CHECK(ff.to_vector() == rf.to_vector());
      flat.step(ff);
      ref.step(rf);
    }
    CHECK(flat.last_step_flat() == (step < 3));
    CHECK_FALSE(ref.last_step_flat());
    flat_ema.update(step);
    ref_ema.update(step);
    for (std::size_t i = 0; i < fv.size(); ++i) {
      INFO("parameter " << fp.all()[i].name);
      REQUIRE(fv[i].value().to_vector() == rv[i].value().to_vector());
      REQUIRE(flat.exp_avg()[i].to_vector() == ref.exp_avg()[i].to_vector());
      REQUIRE(flat.exp_avg_sq()[i].to_vector() == ref.exp_avg_sq()[i].to_vector());
      REQUIRE(flat_ema.shadow()[i].to_vector() == ref_ema.shadow()[i].to_vector());
    }
    CHECK(flat.param_steps() == ref.param_steps());
    fp.zero_grad();
    ref.zero_grad();
  }
}

TEST_CASE("arena: Adam and the EMA reject arenas the parameters are not views of", "[arena][adam]") {
  models::ParamSet ps;
  ag::Var a = ps.add("a", {2});
  ag::Var b = ps.add("b", {3});
  ps.zero_grad();
  // The parameters out of order do not tile the arena.
  REQUIRE_THROWS_WITH(ag::Adam({b, a}, kernels::AdamHyper{}, ps.param_arena(), ps.grad_arena()),
                      Catch::Contains("not consecutive views of the parameter arena"));
  REQUIRE_THROWS_WITH(ag::Adam({a, b}, kernels::AdamHyper{}, ps.param_arena(), Tensor()),
                      Catch::Contains("both arenas"));
  REQUIRE_THROWS_WITH(models::Ema({a}, models::EmaConfig{}, ps.param_arena()),
                      Catch::Contains("not consecutive views of the parameter arena"));
}

TEST_CASE("arena: training steps over the arenas end bitwise where the per-tensor steps end", "[arena][train]") {
  // The trainer's step (forward, backward, clip factor, Adam, EMA) with the arenas, and the same
  // step as it ran before them: gradients taking the backward's storage, per-tensor updates.
  DD_TEST_RANDOM(rng);
  Generator g1(21), g2(21);
  models::Unet flat_model(tiny_config(), g1), ref_model(tiny_config(), g2);
  models::ParamSet& fp = flat_model.params();
  fp.zero_grad();
  const std::vector<ag::Var> fv = fp.vars(), rv = ref_model.params().vars();
  ag::Adam flat(fv, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, fp.param_arena(), fp.grad_arena());
  ag::Adam ref(rv, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f});
  models::EmaConfig ec;
  ec.update_every = 1;
  ec.update_after_step = 1;
  models::Ema flat_ema(fv, ec, fp.param_arena()), ref_ema(rv, ec);
  const models::GaussianDiffusion diffusion(models::Schedule::make(models::BetaSchedule::Linear, 20),
                                            kernels::LossType::Huber);
  const Tensor x0 = from_double({3, 8, 8, 1}, rng.uniform(3 * 8 * 8, -1.0, 1.0));
  Generator nf(9), nr(9);
  for (int64_t step = 1; step <= 3; ++step) {
    INFO("step " << step);
    ag::Tape::current().clear();
    ag::Var lf = diffusion.p_losses(flat_model, x0, nf);
    ag::Tape::current().backward(lf);
    ag::Tape::current().clear();
    ag::Var lr = diffusion.p_losses(ref_model, x0, nr);
    ag::Tape::current().backward(lr);
    ag::Tape::current().clear();
    CHECK(lf.value().item() == lr.value().item());
    for (const ag::Var& v : fv) CHECK(v.grad().same_storage(fp.grad_arena()));
    flat.step(ag::clip_grad_norm_factor(fv, 0.5, fp.grad_arena()));
    ref.step(ag::clip_grad_norm_factor(rv, 0.5));
    CHECK(flat.last_step_flat());
    fp.zero_grad();
    ref.zero_grad();
    flat_ema.update(step);
    ref_ema.update(step);
    for (std::size_t i = 0; i < fv.size(); ++i) {
      INFO("parameter " << fp.all()[i].name);
      REQUIRE(fv[i].value().to_vector() == rv[i].value().to_vector());
      REQUIRE(flat.exp_avg_sq()[i].to_vector() == ref.exp_avg_sq()[i].to_vector());
      REQUIRE(flat_ema.shadow()[i].to_vector() == ref_ema.shadow()[i].to_vector());
    }
  }
}

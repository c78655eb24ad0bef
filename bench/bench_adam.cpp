// The optimizer's multi-tensor passes (kernels/multi_tensor.h) over every parameter of the CIFAR-10
// preset U-Net (35.7M parameters in a few hundred tensors): Adam, the EMA lerp, the gradient norm's
// sum of squares and the clip's scale. Memory-bound: GB/s against a device copy measured in this run.
#include <cmath>
#include <cstdio>

#include "bench/bench_common.h"
#include "engine/rng.h"
#include "kernels/elementwise.h"
#include "kernels/multi_tensor.h"
#include "models/unet.h"

using namespace dd;
using namespace dd::bench;

namespace {
struct State {
  std::vector<Tensor> p, g, m, v, shadow;
};

State make_state(const std::vector<Tensor>& params, Device d, uint64_t seed) {
  State s;
  for (const Tensor& t : params) {
    s.p.push_back(t.to(d));
    s.g.push_back(random_tensor(t.shape(), d, seed++, 1e-2f));
    s.m.push_back(random_tensor(t.shape(), d, seed++, 1e-3f));
    Tensor v = random_tensor(t.shape(), d, seed++, 1e-3f);
    s.v.push_back(kernels::mul(v, v));  // second moments are non-negative
    s.shadow.push_back(kernels::affine(s.p.back(), 1.0f, 1e-3f));
  }
  return s;
}

std::vector<kernels::AdamSlot> slots(State& s) {
  std::vector<kernels::AdamSlot> r;
  for (std::size_t i = 0; i < s.p.size(); ++i) r.push_back({s.p[i], s.g[i], s.m[i], s.v[i]});
  return r;
}

double max_err(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, rel_err(a[i], b[i]));
  return e;
}
}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const Device dev = a.device();
  models::UnetConfig cfg;
  cfg.dim = 64;
  cfg.dim_mults = {1, 2, 4, 8};
  cfg.channels = 3;
  Generator gen(3);
  models::Unet model(cfg, gen);
  std::vector<Tensor> params;
  for (const auto& p : model.params().all()) params.push_back(p.var.value());
  const double n = double(model.params().numel());
  const double copy = measured_copy_gbs(dev);
  print_header("Optimizer passes over all parameters of the CIFAR-10 preset", a);
  std::printf("%sM parameters in %zu tensors. Device copy bandwidth measured in this run: %s GB/s. Bytes: Adam reads "
              "p, g, m, v and writes p, m, v (28 B/param); EMA reads shadow and p, writes shadow (12); the sum of "
              "squares reads g (4); the clip scale reads and writes g (8).\n\n",
              fmt(n / 1e6, 4).c_str(), params.size(), fmt(copy, 4).c_str());

  State s = make_state(params, dev, 100);
  kernels::AdamHyper hyper;
  const kernels::AdamStepScalars sc = kernels::adam_scalars(hyper, 10);
  bool ok = true;
  double e_adam = NAN, e_ema = NAN, e_ss = NAN, e_scale = NAN;
  if (!a.cpu) {
    // One call of each pass on copies, GPU vs CPU on the same values.
    State g = make_state(params, dev, 100), c = make_state(params, Device::CPU, 100);
    auto gs = slots(g), cs = slots(c);
    kernels::adam_update_multi(gs, sc);
    kernels::cpu::adam_update_multi(cs, sc);
    // Elementwise fp32 with sqrt and a division per element: 1e-5.
    e_adam = std::max({max_err(g.p, c.p), max_err(g.m, c.m), max_err(g.v, c.v)});
    ok &= check("adam_update_multi", e_adam, 1e-5);
    kernels::ema_update_multi(g.shadow, g.p, 0.005f);
    kernels::cpu::ema_update_multi(c.shadow, c.p, 0.005f);
    e_ema = max_err(g.shadow, c.shadow);
    ok &= check("ema_update_multi", e_ema, 1e-6);
    const double ssg = kernels::sum_squares_multi(g.g), ssc = kernels::cpu::sum_squares_multi(c.g);
    e_ss = std::fabs(ssg - ssc) / ssc;  // double accumulation on both sides, different order
    ok &= check("sum_squares_multi", e_ss, 1e-9);
    kernels::scale_multi_(g.g, 0.5f);
    kernels::cpu::scale_multi_(c.g, 0.5f);
    e_scale = max_err(g.g, c.g);
    ok &= check("scale_multi_", e_scale, 1e-6);
  }
  if (!ok) {
    std::printf("A pass disagreed with the CPU backend; nothing timed.\n");
    return 1;
  }
  const int warm = a.warmup_or(3, 1), reps = a.repeats_or(20, 9);
  auto sl = slots(s);
  struct Row {
    const char* op;
    double bytes_per, err;
    std::function<void()> fn;
  };
  const std::vector<Row> rows{
      {"adam_update_multi", 28, e_adam, [&] { kernels::adam_update_multi(sl, sc); }},
      {"ema_update_multi", 12, e_ema, [&] { kernels::ema_update_multi(s.shadow, s.p, 0.005f); }},
      {"sum_squares_multi (grad norm)", 4, e_ss, [&] { kernels::sum_squares_multi(s.g); }},
      {"scale_multi_ (clip)", 8, e_scale, [&] { kernels::scale_multi_(s.g, 0.999999f); }},
  };
  table_header({"op", "params", "ms", "GB/s", "% of copy", a.cpu ? "rel err" : "rel err vs CPU"});
  for (const Row& r : rows) {
    const double ms = time_ms(dev, r.fn, warm, reps);
    const double gbs = r.bytes_per * n / (ms * 1e-3) / 1e9;
    table_row({r.op, fmt(n / 1e6, 4) + "M", fmt(ms), fmt(gbs, 4), fmt(100 * gbs / copy),
               std::isnan(r.err) ? "checked by dd_tests" : fmt_err(r.err)});
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_adam: %s\n", e.what());
  return 2;
}

// The U-Net's memory-bound glue at the CIFAR-10 preset's largest activation (batch 128 x 32 x 32 x 64;
// --cpu: batch 8): residual add, mul, axpy (gradient accumulation), SiLU forward/backward, the time
// scale/shift broadcast, the skip-connection concat, nearest 2x upsample and pixel-unshuffle.
// GB/s against a device copy measured in this run.
#include <cstdio>
#include <map>
#include <memory>

#include "bench/bench_common.h"
#include "kernels/activation.h"
#include "kernels/broadcast.h"
#include "kernels/concat.h"
#include "kernels/elementwise.h"
#include "kernels/pixel_unshuffle.h"
#include "kernels/upsample.h"
#include "tests/reference/activation.h"
#include "tests/reference/elementwise.h"

using namespace dd;
using namespace dd::bench;

namespace {
std::vector<double> d64(const Tensor& t) {
  auto v = t.to_vector();
  return {v.begin(), v.end()};
}
using Outs = std::vector<Tensor>;
using Refs = std::vector<std::vector<double>>;
}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const int64_t B = a.batch_or(128, 8), H = 32, C = 64;
  const double copy = measured_copy_gbs(a.device());
  print_header(str_cat("Elementwise and layout ops, CIFAR-10 preset's largest activation, batch ", B), a);
  std::printf("Device copy bandwidth measured in this run: %s GB/s (bytes read + written). Bytes per op: inputs "
              "read once, outputs written once.\n\n", fmt(copy, 4).c_str());

  const Shape shape{B, H, H, C};
  const std::string sh = fmt_shape(shape);
  const double n4 = double(B * H * H * C) * 4;  // bytes of one activation
  auto x = std::make_shared<Pair>(random_pair(shape, a, 11, 2.0f));
  auto y = std::make_shared<Pair>(random_pair(shape, a, 12));
  auto sc = std::make_shared<Pair>(random_pair({B, C}, a, 13, 0.5f));
  auto sf = std::make_shared<Pair>(random_pair({B, C}, a, 14, 0.5f));
  auto half = std::make_shared<Pair>(random_pair({B, H / 2, H / 2, 2 * C}, a, 15));

  std::vector<OpCase> cs;
  auto add_case = [&](const std::string& op, const std::string& shp, double bytes, double tol,
                      std::function<Outs(Device)> run, std::function<Refs()> ref = nullptr) {
    OpCase c;
    c.op = op;
    c.shape = shp;
    c.bytes = bytes;
    c.tol = tol;
    c.run = std::move(run);
    c.ref64 = std::move(ref);
    cs.push_back(std::move(c));
  };
  // Plain fp32 arithmetic, one rounding per element: 1e-6. Transcendentals (expf) may differ by an ulp: 1e-5.
  add_case("add", sh, 3 * n4, 1e-6, [=](Device d) { return Outs{kernels::add(x->on(d), y->on(d))}; },
           [=] { return Refs{ref::add(d64(x->cpu), d64(y->cpu))}; });
  add_case("mul", sh, 3 * n4, 1e-6, [=](Device d) { return Outs{kernels::mul(x->on(d), y->on(d))}; },
           [=] { return Refs{ref::mul(d64(x->cpu), d64(y->cpu))}; });
  // In place on a scratch copy per device (made once): y += 0.5 x, repeated; compared after one call.
  auto acc = std::make_shared<std::map<Device, Tensor>>();
  add_case("axpy_ (in place)", sh, 3 * n4, 1e-5, [=](Device d) {
    if (!acc->count(d)) (*acc)[d] = y->on(d).clone();
    Tensor t = acc->at(d);
    kernels::axpy_(t, 1e-3f, x->on(d));
    return Outs{t};
  });
  add_case("silu fwd", sh, 2 * n4, 1e-5, [=](Device d) { return Outs{kernels::silu_forward(x->on(d))}; },
           [=] { return Refs{ref::silu(d64(x->cpu))}; });
  add_case("silu bwd", sh, 3 * n4, 1e-5, [=](Device d) { return Outs{kernels::silu_backward(x->on(d), y->on(d))}; });
  add_case("scale_shift (x*(s+1)+t, [B,C])", sh, 2 * n4, 1e-5,
           [=](Device d) { return Outs{kernels::scale_shift(x->on(d), sc->on(d), sf->on(d))}; });
  add_case("concat (64+64 channels)", sh + " x2", 4 * n4, 0,
           [=](Device d) { return Outs{kernels::concat({x->on(d), y->on(d)})}; });
  add_case("upsample2x fwd", fmt_shape(half->cpu.shape()), 2.5 * n4, 0,
           [=](Device d) { return Outs{kernels::upsample2x_forward(half->on(d))}; });
  add_case("upsample2x bwd", sh, 1.25 * n4, 1e-6, [=](Device d) { return Outs{kernels::upsample2x_backward(x->on(d))}; });
  add_case("pixel_unshuffle fwd", sh, 2 * n4, 0, [=](Device d) { return Outs{kernels::pixel_unshuffle_forward(x->on(d))}; });
  // axpy_ mutates its scratch across repeats; the GPU check compares the first call on each side.
  const bool ok = run_cases(a, cs, copy, a.warmup_or(5, 2), a.repeats_or(50, 15));
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_elementwise: %s\n", e.what());
  return 2;
}

// GroupNorm and the fused GroupNorm -> scale/shift -> SiLU (kernels/group_norm_act.h) at the
// CIFAR-10 preset's activation shapes (dim 64, dim_mults 1,2,4,8 at 32, 16, 8, 4 pixels; batch 128,
// --cpu: 8): the ResNet blocks' GroupNorm(4, C) with and without the time scale/shift, and the
// attention PreNorm GroupNorm(1, C). Memory-bound: GB/s against a device copy measured in this run.
// On the GPU GroupNorm runs a block per (batch, group); "(two-pass)" rows time the two-pass path
// they replaced, side by side.
#include <cstdio>
#include <map>
#include <memory>

#include "bench/bench_common.h"
#include "kernels/group_norm.h"
#include "kernels/group_norm_act.h"
#include "tests/reference/group_norm.h"
#include "tests/reference/group_norm_act.h"

using namespace dd;
using namespace dd::bench;

namespace {
std::vector<double> d64(const Tensor& t) {
  auto v = t.to_vector();
  return {v.begin(), v.end()};
}

// On the GPU, beside each case: the same under the two-pass path the one-block-per-group kernels
// replaced (kernels/group_norm.h), timed in the same run.
void add_case(const Args& a, std::vector<OpCase>& cases, const OpCase& b) {
  cases.push_back(b);
#ifdef DD_WITH_CUDA
  if (a.cpu) return;
  OpCase two = b;
  two.op += " (two-pass)";
  two.run = [run = b.run](Device d) {
    kernels::cuda::set_group_norm_path(kernels::cuda::GroupNormPath::TwoPass);
    try {
      auto r = run(d);
      kernels::cuda::set_group_norm_path(kernels::cuda::GroupNormPath::Auto);
      return r;
    } catch (...) {
      kernels::cuda::set_group_norm_path(kernels::cuda::GroupNormPath::Auto);
      throw;
    }
  };
  cases.push_back(two);
#else
  (void)a;
#endif
}
}  // namespace

int main(int argc, char** argv) try {
  Args a = parse_args(argc, argv);
  require_device(a);
  const int64_t B = a.batch_or(128, 8);
  const double copy = measured_copy_gbs(a.device());
  print_header(str_cat("GroupNorm and fused GroupNorm->scale/shift->SiLU, CIFAR-10 preset shapes, batch ", B), a);
  std::printf("Device copy bandwidth measured in this run: %s GB/s (bytes read + written). Bytes per op: x read once "
              "and y written once (forward); x and dy read, dx written (backward); the [B, G] statistics and "
              "per-channel vectors are counted too.\n\n", fmt(copy, 4).c_str());

  std::vector<OpCase> cases;
  const int dims[4] = {64, 128, 256, 512}, sides[4] = {32, 16, 8, 4};
  uint64_t seed = 500;
  for (int lvl = 0; lvl < (a.quick ? 1 : 4); ++lvl) {
    const int64_t C = dims[lvl], S = int64_t(sides[lvl]) * sides[lvl];
    const Shape shape{B, sides[lvl], sides[lvl], C};
    const std::string sh = fmt_shape(shape);
    const double act = double(B * S * C) * 4;
    auto x = std::make_shared<Pair>(random_pair(shape, a, seed += 10, 2.0f));
    auto dy = std::make_shared<Pair>(random_pair(shape, a, seed + 1));
    auto gamma = std::make_shared<Pair>(random_pair({C}, a, seed + 2));
    auto beta = std::make_shared<Pair>(random_pair({C}, a, seed + 3));
    auto scale = std::make_shared<Pair>(random_pair({B, C}, a, seed + 4, 0.5f));
    auto shift = std::make_shared<Pair>(random_pair({B, C}, a, seed + 5, 0.5f));
    for (int64_t G : {int64_t(4), int64_t(1)}) {
      const std::string gname = str_cat("group_norm G=", G);
      OpCase f;
      f.op = gname + " fwd";
      f.shape = sh;
      f.bytes = 2 * act;
      f.tol = 1e-4;  // a reduction over up to 32·32·64 elements per group
      f.run = [=](Device d) { return std::vector<Tensor>{kernels::group_norm_forward(x->on(d), gamma->on(d), beta->on(d), G).y}; };
      f.ref64 = [=] { return std::vector<std::vector<double>>{ref::group_norm(d64(x->cpu), d64(gamma->cpu), d64(beta->cpu), B, S, C, G)}; };
      add_case(a, cases, f);
      OpCase b;
      b.op = gname + " bwd";
      b.shape = sh;
      b.bytes = 3 * act;
      b.tol = 1e-4;
      auto stats = std::make_shared<std::map<Device, kernels::GroupNormOut>>();
      b.run = [=](Device d) {
        // The forward's statistics, computed once per device: only the backward is timed.
        if (!stats->count(d)) (*stats)[d] = kernels::group_norm_forward(x->on(d), gamma->on(d), beta->on(d), G);
        const auto& o = stats->at(d);
        auto g = kernels::group_norm_backward(x->on(d), gamma->on(d), o.mean, o.rstd, dy->on(d));
        return std::vector<Tensor>{g.dx, g.dgamma, g.dbeta};
      };
      add_case(a, cases, b);
    }
    // The fused op with the ResNet block1's time scale/shift (block2 has none).
    for (bool ss : {true, false}) {
      const std::string name = ss ? "gn_act G=4 +scale/shift" : "gn_act G=4";
      auto sc = [=](Device d) { return ss ? scale->on(d) : Tensor(); };
      auto sf = [=](Device d) { return ss ? shift->on(d) : Tensor(); };
      OpCase f;
      f.op = name + " fwd";
      f.shape = sh;
      f.bytes = 2 * act;
      f.tol = 1e-4;
      f.run = [=](Device d) {
        return std::vector<Tensor>{kernels::group_norm_act_forward(x->on(d), gamma->on(d), beta->on(d), sc(d), sf(d), 4).y};
      };
      f.ref64 = [=] {
        return std::vector<std::vector<double>>{ref::group_norm_act(d64(x->cpu), d64(gamma->cpu), d64(beta->cpu),
                                                                    ss ? d64(scale->cpu) : std::vector<double>{},
                                                                    ss ? d64(shift->cpu) : std::vector<double>{}, B, S, C, 4)};
      };
      add_case(a, cases, f);
      OpCase b;
      b.op = name + " bwd";
      b.shape = sh;
      b.bytes = 3 * act;
      b.tol = 1e-4;
      auto stats = std::make_shared<std::map<Device, kernels::GroupNormActOut>>();
      b.run = [=](Device d) {
        if (!stats->count(d)) (*stats)[d] = kernels::group_norm_act_forward(x->on(d), gamma->on(d), beta->on(d), sc(d), sf(d), 4);
        const auto& o = stats->at(d);
        auto g = kernels::group_norm_act_backward(x->on(d), gamma->on(d), beta->on(d), sc(d), sf(d), o.mean, o.rstd, dy->on(d));
        std::vector<Tensor> r{g.dx, g.dgamma, g.dbeta};
        if (ss) {
          r.push_back(g.dscale);
          r.push_back(g.dshift);
        }
        return r;
      };
      add_case(a, cases, b);
    }
  }
  const bool ok = run_cases(a, cases, copy, a.warmup_or(5, 2), a.repeats_or(50, 15));
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_group_norm: %s\n", e.what());
  return 2;
}

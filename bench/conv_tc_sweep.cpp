#include "bench/conv_tc_sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "bench/bench_common.h"
#include "kernels/conv2d.h"

namespace dd::bench {

#ifdef DD_WITH_CUDA
namespace {

using kernels::Conv2dGrads;
using kernels::cuda::TcConvOptions;

struct Option {
  std::string name;
  TcConvOptions opt;
  double ms = NAN;
};

std::string tile_label(int tile) { return str_cat("t", tile, " ", kernels::cuda::conv2d_tc_tile_name(tile)); }

// An option as the autotuning table names it, with its tile's shape where it names a tile.
Option named(const TcConvOptions& o, bool dw) {
  const int tile = dw ? o.dw_tile : o.tile;
  const std::string label = kernels::cuda::conv2d_tc_option_label(o, dw);
  return {tile >= 0 ? str_cat(label, " ", kernels::cuda::conv2d_tc_tile_name(tile)) : label, o};
}

}  // namespace

bool tensor_core_sweep(Precision prec, const std::vector<ConvShape>& shapes, int64_t B, int warm, int reps,
                       const std::string& only) {
  const Device dev = Device::CUDA;
  const bool bf16 = prec == Precision::BF16;
  // As the tensor-core table: relative to the largest |expected|, operands rounded to bf16 (2^-8)
  // or tf32 (2^-11) over reductions of up to 9*768 (dx, forward) or 128*32*32 (dw) random-sign terms.
  const double tol = bf16 ? 2e-2 : 5e-3;
  std::printf("\n### Tensor-core tile sweep, %s, batch %lld: what the rules run against every option\n\n",
              precision_name(prec), static_cast<long long>(B));
  std::printf("Each option validated against the CPU backend (rel err <= %g) before it is timed; operands as in the "
              "table above (bf16: x and w as bf16 tensors, dy fp32 and packed by each call). `rule / fastest` > 1: a "
              "per-shape choice would be faster.\n\n",
              tol);
  table_header({"conv (HxW Ci->Co k p)", "uses", "dir", "rule runs", "rule ms", "fastest", "fastest ms",
                "rule / fastest", "every option, ms"});
  bool all_ok = true;
  double tot_rule = 0, tot_best = 0;
  uint64_t seed = 9000;
  for (const ConvShape& s : shapes) {
    seed += 10;
    if (!only.empty() && s.key().find(only) == std::string::npos) continue;
    const ConvInputs in = make_conv_inputs(s, B, dev, seed);
    const int pad = int(s.pad);
    const Tensor xc = in.x.to(Device::CPU), wc = in.w.to(Device::CPU), dyc = in.dy.to(Device::CPU);
    const Tensor bc = s.bias ? in.bias.to(Device::CPU) : Tensor();
    const Tensor yc = kernels::cpu::conv2d_forward(xc, wc, bc, pad);
    const Conv2dGrads gc = kernels::cpu::conv2d_backward(xc, wc, dyc, pad, true, true, false);
    const kernels::cuda::TcConvPlan plan = kernels::cuda::conv2d_tc_plan(B, s.h, s.w, s.ci, s.co, s.k, pad, prec);

    // x and w as the bf16 training step hands them over (bench_conv2d's table says why).
    const Tensor xo = bf16 ? in.x.to(DType::BF16) : in.x, wo = bf16 ? in.w.to(DType::BF16) : in.w;
    // dir 0 forward, 1 dx, 2 dw: run(opt) returns the direction's output.
    const std::function<Tensor(const TcConvOptions&)> run[3] = {
        [&](const TcConvOptions& o) { return kernels::cuda::conv2d_forward_tc(xo, wo, in.bias, pad, prec, o); },
        [&](const TcConvOptions& o) {
          return kernels::cuda::conv2d_backward_tc(xo, wo, in.dy, pad, true, false, false, prec, o).dx;
        },
        [&](const TcConvOptions& o) {
          return kernels::cuda::conv2d_backward_tc(xo, wo, in.dy, pad, false, true, false, prec, o).dw;
        }};
    const Tensor* expected[3] = {&yc, &gc.dx, &gc.dw};
    const char* dirs[3] = {"fwd", "bwd-data", "bwd-weight"};
    const int rule_tile[3] = {plan.fwd_tile, plan.dx_tile, plan.dw_tile};
    for (int d = 0; d < 3; ++d) {
      // What --conv-autotune times, under its table's labels.
      std::vector<Option> opts;
      for (const TcConvOptions& o : d < 2 ? kernels::cuda::conv2d_tc_options(s.k, d == 0 ? s.co : s.ci)
                                          : kernels::cuda::conv2d_tc_dw_options(plan))
        opts.push_back(named(o, d == 2));
      const std::string what = str_cat(s.key(), " ", precision_name(prec), " ", dirs[d], " ");
      const bool rule_ok = check(what + "rule vs cpu", rel_err(run[d]({}), *expected[d]), tol);
      bool ok = rule_ok;
      for (Option& o : opts) {
        try {
          if (check(what + o.name + " vs cpu", rel_err(run[d](o.opt), *expected[d]), tol))
            o.ms = time_ms(dev, [&] { run[d](o.opt); }, warm, reps);
          else
            ok = false;
        } catch (const Error& e) {
          ok = false;
          std::fprintf(stderr, "%s%s: %s\n", what.c_str(), o.name.c_str(), e.what());
        }
      }
      if (!ok) all_ok = false;
      if (!rule_ok) {
        table_row({s.key(), std::to_string(s.uses), dirs[d], "FAILED validation, not timed"});
        continue;
      }
      const double rule_ms = time_ms(dev, [&] { run[d]({}); }, warm, reps);
      const Option* best = nullptr;
      std::string every;
      for (const Option& o : opts) {
        every += str_cat(every.empty() ? "" : " · ", o.name, " ", std::isnan(o.ms) ? std::string("FAILED") : fmt(o.ms));
        if (!std::isnan(o.ms) && (!best || o.ms < best->ms)) best = &o;
      }
      const std::string rule = d < 2 ? tile_label(rule_tile[d])
                                     : str_cat(tile_label(plan.dw_tile), " ", plan.dw_splits, " splits");
      const double best_ms = best ? std::min(best->ms, rule_ms) : rule_ms;
      tot_rule += rule_ms * s.uses;
      tot_best += best_ms * s.uses;
      table_row({s.key(), std::to_string(s.uses), dirs[d], rule, fmt(rule_ms), best ? best->name : "-",
                 best ? fmt(best->ms) : "-", fmt(rule_ms / best_ms), every});
    }
  }
  std::printf("\nAll %s convolutions of one forward + backward (shape x uses): the rules %s ms, the fastest option "
              "per shape and direction %s ms (%s%% less).%s\n",
              precision_name(prec), fmt(tot_rule).c_str(), fmt(tot_best).c_str(),
              fmt(100.0 * (1.0 - tot_best / tot_rule), 1).c_str(),
              all_ok ? "" : " Some options failed validation and were not timed (see the log).");
  return all_ok;
}
#endif

}  // namespace dd::bench

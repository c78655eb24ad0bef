// The tensor-core convolutions' autotuning (kernels/conv_autotune.h): which options each direction
// times, how the table names them, and the key a shape is remembered under. Timing and the table
// live in kernels/conv_autotune.cpp; this file only runs conv2d_tc.cu's entry points with explicit
// options, so the emulator runs it as it is (tests/emu/test_emu_conv2d_tc_tune.cpp).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"
#include "kernels/conv2d.h"
#include "kernels/conv_autotune.h"

namespace dd::kernels::cuda {

namespace {

std::string shape_key(const char* dir, const Tensor& x, const Tensor& w, bool bias, int padding, Precision prec) {
  return str_cat(dir, " ", precision_name(prec), " x", x.dim(0), "x", x.dim(1), "x", x.dim(2), "x", x.dim(3), ":",
                 dtype_name(x.dtype()), " w", w.dim(0), "x", w.dim(1), "x", w.dim(2), "x", w.dim(3), ":",
                 dtype_name(w.dtype()), " p", padding, bias ? " bias" : "", " ", device_name(x.device()));
}

// The option of opts the table chose for key ("" -> nothing: the rules).
bool choose(const std::string& key, const std::vector<TcConvOptions>& opts, bool dw,
            const std::function<void(const TcConvOptions&)>& run, Device dev, TcConvOptions* got) {
  std::vector<std::string> labels;
  for (const TcConvOptions& o : opts) labels.push_back(conv2d_tc_option_label(o, dw));
  const std::string label = conv_autotune_choice(key, labels, [&](int i) { run(opts[i]); }, dev);
  if (label.empty()) return false;
  *got = conv2d_tc_option_from_label(label, dw);
  return true;
}

}  // namespace

// Forward and dx: every tile, and the halo kernel where it applies (K >= 2), in its 128-channel
// form too for more than 64 output channels (n).
std::vector<TcConvOptions> conv2d_tc_options(int64_t k, int64_t n) {
  std::vector<TcConvOptions> out;
  for (int t = 0; t < conv2d_tc_tile_count(); ++t) {
    TcConvOptions o;
    o.tile = t;
    out.push_back(o);
  }
  if (k >= 2) {
    TcConvOptions o;
    o.halo = true;
    out.push_back(o);
    if (n > 64) {
      o.halo_wide = true;
      out.push_back(o);
    }
  }
  return out;
}

// dw: every tile under its own rule's split, then the rule's tile under a quarter, half, twice and
// four times the rule's split (the counts bench_conv2d --sweep times); for 3x3 kernels the halo
// kernel likewise, under its own rule's split and those multiples of it.
std::vector<TcConvOptions> conv2d_tc_dw_options(const TcConvPlan& plan) {
  std::vector<TcConvOptions> out;
  for (int t = 0; t < conv2d_tc_tile_count(); ++t) {
    TcConvOptions o;
    o.dw_tile = t;
    out.push_back(o);
  }
  auto multiples = [&](int rule, const TcConvOptions& base) {
    std::vector<int> seen{rule};
    for (int s : {rule / 4, rule / 2, rule * 2, rule * 4}) {
      if (s < 1 || std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
      seen.push_back(s);
      TcConvOptions o = base;
      o.splits = s;
      out.push_back(o);
    }
  };
  TcConvOptions tiled;
  tiled.dw_tile = plan.dw_tile;
  multiples(plan.dw_splits, tiled);
  if (plan.dw_halo_splits > 0) {
    TcConvOptions halo;
    halo.dw_halo = true;
    out.push_back(halo);
    multiples(plan.dw_halo_splits, halo);
  }
  return out;
}

std::string conv2d_tc_option_label(const TcConvOptions& opt, bool dw) {
  if (dw && opt.dw_halo) return str_cat("halo s", opt.splits);
  if (dw) return str_cat("t", opt.dw_tile >= 0 ? opt.dw_tile : opt.tile, " s", opt.splits);
  if (opt.halo) return opt.halo_wide ? "halo128" : "halo";
  return str_cat("t", opt.tile);
}

TcConvOptions conv2d_tc_option_from_label(const std::string& label, bool dw) {
  TcConvOptions o;
  if (!dw && (label == "halo" || label == "halo128")) {
    o.halo = true;
    o.halo_wide = label == "halo128";
    return o;
  }
  int tile = -1, splits = 0, used = 0;
  if (dw && std::sscanf(label.c_str(), "halo s%d%n", &splits, &used) == 1 && used == static_cast<int>(label.size()) &&
      splits >= 0) {
    o.dw_halo = true;
    o.splits = splits;
    return o;
  }
  const bool ok = dw ? std::sscanf(label.c_str(), "t%d s%d%n", &tile, &splits, &used) == 2
                     : std::sscanf(label.c_str(), "t%d%n", &tile, &used) == 1;
  DD_CHECK(ok && used == static_cast<int>(label.size()) && tile >= 0 && tile < conv2d_tc_tile_count() && splits >= 0,
           "conv autotune: \"", label, "\" names no tensor-core conv option (", dw ? "dw: t<tile> s<splits> or halo s<splits>" : "t<tile>, halo or halo128",
           ", tiles 0..", conv2d_tc_tile_count() - 1, ")");
  (dw ? o.dw_tile : o.tile) = tile;
  o.splits = splits;
  return o;
}

TcConvOptions conv2d_tc_tuned_forward(const Tensor& x, const Tensor& w, const Tensor& bias, int padding,
                                      Precision prec, bool sums) {
  TcConvOptions got;
  if (!conv_autotune()) return got;
  const std::string key = shape_key(sums ? "fwd+sums" : "fwd", x, w, bias.defined(), padding, prec);
  choose(key, conv2d_tc_options(w.dim(1), w.dim(0)), false,
         [&](const TcConvOptions& o) {
           Tensor s;
           if (sums)
             conv2d_forward_tc_sums(x, w, bias, padding, prec, s, o);
           else
             conv2d_forward_tc(x, w, bias, padding, prec, o);
         },
         x.device(), &got);
  return got;
}

TcConvOptions conv2d_tc_tuned_backward(const Tensor& x, const Tensor& w, const Tensor& dy, int padding, bool need_dx,
                                       bool need_dw, Precision prec) {
  TcConvOptions out;
  if (!conv_autotune()) return out;
  if (need_dx) {
    TcConvOptions dx;
    if (choose(shape_key("dx", x, w, false, padding, prec), conv2d_tc_options(w.dim(1), w.dim(3)), false,
               [&](const TcConvOptions& o) { conv2d_backward_tc(x, w, dy, padding, true, false, false, prec, o); },
               x.device(), &dx)) {
      out.tile = dx.tile;
      out.halo = dx.halo;
      out.halo_wide = dx.halo_wide;
    }
  }
  if (need_dw) {
    const TcConvPlan plan = conv2d_tc_plan(x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(1), padding, prec);
    TcConvOptions dw;
    // dw under the rule is spelled out: with dx's tile forced, dw_tile -1 would follow it.
    if (!choose(shape_key("dw", x, w, false, padding, prec), conv2d_tc_dw_options(plan), true,
                [&](const TcConvOptions& o) { conv2d_backward_tc(x, w, dy, padding, false, true, false, prec, o); },
                x.device(), &dw)) {
      dw.dw_tile = plan.dw_tile;
      dw.splits = plan.dw_splits;
    }
    out.dw_tile = dw.dw_tile;
    out.dw_halo = dw.dw_halo;
    out.splits = dw.splits;
  }
  return out;
}

}  // namespace dd::kernels::cuda

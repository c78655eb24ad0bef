#pragma once
// Layers shared by the model families (models/unet.cpp, models/unet2d.cpp): each registers its
// parameters under a PyTorch state_dict name and initialises them like PyTorch's defaults.
#include <cmath>
#include <string>

#include "autograd/conv2d.h"
#include "autograd/group_norm.h"
#include "autograd/linear.h"
#include "autograd/reshape.h"
#include "models/params.h"

namespace dd::models::layers {

inline float fan_in_bound(int64_t fan_in) { return 1.0f / std::sqrt(static_cast<float>(fan_in)); }

// nn.Conv2d(cin, cout, k, padding=k/2) (or the geometry given), weight stored OHWI.
struct Conv {
  ag::Var w, b;
  int pad = 0;
  kernels::Conv2dGeometry geo;  // used when not plain (stride or uneven padding)
  Conv() = default;
  Conv(ParamSet& ps, Generator& g, const std::string& name, int cin, int cout, int k, bool bias = true) {
    pad = k / 2;
    geo = {1, pad, pad, pad, pad};
    w = ps.add(name + ".weight", {cout, k, k, cin}, ParamKind::ConvWeight);
    const float bound = fan_in_bound(static_cast<int64_t>(cin) * k * k);
    uniform_fill(w.value(), bound, g);
    if (bias) {
      b = ps.add(name + ".bias", {cout});
      uniform_fill(b.value(), bound, g);
    }
  }
  ag::Var operator()(const ag::Var& x) const { return geo.plain() ? ag::conv2d(x, w, b, pad) : ag::conv2d(x, w, b, geo); }
};

// nn.Linear(in, out) over the last dim of x [M, in].
struct Linear {
  ag::Var w, b;
  Linear() = default;
  Linear(ParamSet& ps, Generator& g, const std::string& name, int in, int out) {
    w = ps.add(name + ".weight", {out, in});
    b = ps.add(name + ".bias", {out});
    const float bound = fan_in_bound(in);
    uniform_fill(w.value(), bound, g);
    uniform_fill(b.value(), bound, g);
  }
  ag::Var operator()(const ag::Var& x) const { return ag::linear(x, w, b); }
  // Over the channels of NHWC x: [B, H, W, in] -> [B, H, W, out].
  ag::Var nhwc(const ag::Var& x) const {
    const Shape& s = x.shape();
    ag::Var y = ag::linear(ag::reshape(x, {s[0] * s[1] * s[2], s[3]}), w, b);
    return ag::reshape(y, {s[0], s[1], s[2], w.shape()[0]});
  }
};

// nn.GroupNorm(groups, ch, eps): weight 1, bias 0.
struct GroupNorm {
  ag::Var g, b;
  int groups = 1;
  float eps = 1e-5f;
  GroupNorm() = default;
  GroupNorm(ParamSet& ps, const std::string& name, int groups_, int ch, float eps_ = 1e-5f)
      : groups(groups_), eps(eps_) {
    g = ps.add(name + ".weight", {ch});
    b = ps.add(name + ".bias", {ch});
    g.value().fill_(1.0f);
    b.value().fill_(0.0f);
  }
  // bf16_out: y's readers all round it to bf16 (ag::group_norm's bf16_y).
  ag::Var operator()(const ag::Var& x, bool bf16_out = false) const {
    return ag::group_norm(x, g, b, groups, eps, bf16_out);
  }
};

}  // namespace dd::models::layers

#pragma once
// Error bounds for the tensor-core convolutions (kernels/cuda/conv2d_tc.cu) against the fp32 CPU
// backend, derived per output element from the arithmetic rather than one global tolerance.
//
// Each output is a sum of n products x_i w_i. The tensor-core path rounds each input once, to
// x_i (1 + d) and w_i (1 + e) with |d|, |e| <= u, the unit roundoff 2^-p of a p-bit significand
// rounded to nearest (bf16: p = 8 with the implicit bit, u = 2^-8; tf32: p = 11, u = 2^-11; fp32:
// p = 24, u = 2^-24), so a product is off by at most (2u + u^2) |x_i w_i|. (u = 2^-9 for bf16
// would be half an ulp of a 9-bit significand: the emulated bf16 dw exceeded it, by 1.2x.) Both it and the CPU
// then sum in fp32 (unit roundoff 2^-24) in some order: each is within gamma_n = n 2^-24 of
// sum |x_i w_i| of the exact sum (plus the dw split fold and the bias add: n + 2 additions). So
//   |ours - cpu| <= ((2u + u^2) + 2 (n + 2) 2^-24) S + 2^-23 |bias|,   S = sum_i |x_i w_i|,
// with S computed here in float64 from the unrounded inputs. A wrong index or a dropped term
// shows up as an error of order |x_i w_i|, hundreds of times these bounds. On the emulator's
// random cases the worst element reaches 0.4 to 0.6 of its bound (bf16 and tf32 alike).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/context.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/support/compare.h"

namespace dd::test::conv_tc {

struct Dims {
  int64_t b, h, w, ci, co, k, p;
  int64_t ho() const { return h + 2 * p - k + 1; }
  int64_t wo() const { return w + 2 * p - k + 1; }
  std::string str() const { return str_cat("B", b, " ", h, "x", w, " Ci", ci, " Co", co, " K", k, " p", p); }
};

// Unit roundoff of one rounded operand.
inline double unit_roundoff(Precision p) { return p == Precision::BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11); }

inline std::vector<double> abs_of(const Tensor& t) { return to_double(abs_tensor(t)); }

// S for each output of the forward (y [b, ho, wo, co]), dx (x's shape) and dw (w's shape):
// the same sums as the convolution with every input replaced by its magnitude.
struct AbsSums {
  std::vector<double> y, dx, dw;
};

inline AbsSums abs_sums(const Dims& d, const Tensor& x, const Tensor& w, const Tensor& dy) {
  const std::vector<double> ax = abs_of(x), aw = abs_of(w), ady = abs_of(dy);
  AbsSums s;
  s.y.assign(std::size_t(d.b * d.ho() * d.wo() * d.co), 0.0);
  s.dx.assign(ax.size(), 0.0);
  s.dw.assign(aw.size(), 0.0);
  for (int64_t b = 0; b < d.b; ++b)
    for (int64_t oh = 0; oh < d.ho(); ++oh)
      for (int64_t ow = 0; ow < d.wo(); ++ow)
        for (int64_t kh = 0; kh < d.k; ++kh)
          for (int64_t kw = 0; kw < d.k; ++kw) {
            const int64_t ih = oh + kh - d.p, iw = ow + kw - d.p;
            if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) continue;
            const int64_t xo = ((b * d.h + ih) * d.w + iw) * d.ci, yo = ((b * d.ho() + oh) * d.wo() + ow) * d.co;
            for (int64_t o = 0; o < d.co; ++o) {
              const int64_t wo = ((o * d.k + kh) * d.k + kw) * d.ci;
              double acc = 0.0;
              for (int64_t c = 0; c < d.ci; ++c) {
                acc += ax[xo + c] * aw[wo + c];
                s.dx[xo + c] += ady[yo + o] * aw[wo + c];
                s.dw[wo + c] += ady[yo + o] * ax[xo + c];
              }
              s.y[yo + o] += acc;
            }
          }
  return s;
}

// Checks actual against expected elementwise with the bound above; n: the reduction length,
// bias: added to every row of the last dim (forward) or empty.
inline void expect_within_bound(const std::string& what, const Tensor& actual, const Tensor& expected,
                                const std::vector<double>& abs_sum, int64_t n, Precision prec,
                                const Tensor& bias = Tensor()) {
  const std::vector<float> a = actual.to(Device::CPU).to_vector(), e = expected.to(Device::CPU).to_vector();
  REQUIRE(a.size() == e.size());
  REQUIRE(a.size() == abs_sum.size());
  const std::vector<float> bv = bias.defined() ? bias.to(Device::CPU).to_vector() : std::vector<float>{};
  const double u = unit_roundoff(prec);
  const double rel = 2 * u + u * u + 2.0 * double(n + 2) * std::ldexp(1.0, -24);
  double worst_ratio = 0.0;
  int64_t worst = -1, bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double bias_term = bv.empty() ? 0.0 : std::ldexp(std::fabs(double(bv[i % bv.size()])), -23);
    const double bound = rel * abs_sum[i] + bias_term + 1e-30;
    const double err = std::fabs(double(a[i]) - double(e[i]));
    const double ratio = std::isfinite(a[i]) ? err / bound : INFINITY;
    if (!(ratio <= 1.0)) ++bad;
    if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = int64_t(i);
  }
  INFO(what << " (" << precision_name(prec) << "): worst |ours - cpu| / bound = " << worst_ratio << " at " << worst
            << (worst >= 0 ? str_cat(" (ours ", a[worst], ", cpu ", e[worst], ", S ", abs_sum[worst], ")") : "")
            << ", " << bad << " of " << a.size() << " outside; bound = (" << rel << ") S");
  CHECK(bad == 0);
}

// dbias runs conv2d.cu's fp32 column sums on unrounded dy (the CPU sums in double): gamma_n only.
inline void expect_dbias(const std::string& what, const Tensor& actual, const Tensor& expected, const Tensor& dy,
                         int64_t co) {
  const std::vector<double> ady = abs_of(dy);
  std::vector<double> s(std::size_t(co), 0.0);
  for (std::size_t i = 0; i < ady.size(); ++i) s[i % co] += ady[i];
  const int64_t n = int64_t(ady.size()) / co;
  const std::vector<float> a = actual.to(Device::CPU).to_vector(), e = expected.to(Device::CPU).to_vector();
  REQUIRE(a.size() == s.size());
  for (int64_t o = 0; o < co; ++o) {
    const double bound = 2.0 * double(n + 2) * std::ldexp(1.0, -24) * s[o] + 1e-30;
    INFO(what << " dbias[" << o << "]: ours " << a[o] << ", cpu " << e[o] << ", bound " << bound);
    CHECK(std::fabs(double(a[o]) - double(e[o])) <= bound);
  }
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const std::vector<float> va = a.to(Device::CPU).to_vector(), vb = b.to(Device::CPU).to_vector();
  return va.size() == vb.size() && std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

// Every forward option of a KxK conv (TcConvOptions of the emulated or the CUDA backend): the
// rule's, each of the tile_count tiles, and for K >= 2 the halo kernel in both widths.
template <class Options>
std::vector<Options> forward_options(int tile_count, int64_t k) {
  std::vector<Options> opts(1);
  for (int tile = 0; tile < tile_count; ++tile) opts.emplace_back().tile = tile;
  if (k >= 2) {
    Options halo;
    halo.halo = true;
    opts.push_back(halo);
    halo.halo_wide = true;
    opts.push_back(halo);
  }
  return opts;
}


}  // namespace dd::test::conv_tc

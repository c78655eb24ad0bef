#pragma once
// Float64 reference and per-element error bounds for linear attention under BF16
// (kernels/cuda/linear_attention_tc.cu: bf16 tensor-core products, fp32 accumulation), used by
// tests/emu/test_emu_linear_attention_tc.cpp and tests/gpu/test_linear_attention.cpp.
//
// The reference runs in float64 on the bf16-rounded qkv and dy (rounded as both backends round
// them under BF16), so what is left is each backend's own arithmetic:
//   the tensor-core kernels round the intermediate operands of their products to bf16 (relative
//   u = 2^-8 each: exp(k - M) and v for the context, S and dy for dcontext, S and the context for
//   out, the context for dQ', dcontext for dK', K' and dcontext for dv), and sum in fp32;
//   the CPU backend sums the same products in fp32 from unrounded intermediates (u = 0 below).
// To first order each product term a b, with a and b carrying relative errors ea and eb, is off
// by (ea + eb) |a b|; summed over a result, by that times the sum of the |terms|. So each result
// gets a magnitude A, the same sums over absolute values (with an intermediate's own error bound
// standing for its magnitude one level up), and a bound (k u + w) A, k the number of rounded
// operand errors along its path, w = (4 N + 4 d + 64) 2^-23 for the fp32 sums, exp and the
// column sums (N positions, d features). Per (batch, head), scale = d^-0.5, S = softmax_d(q),
// K' = softmax_n(k), G = dy:
//   context = K'^T V          A_ctx = K'^T |V|                     bound (u + w) A_ctx
//   out = scale S context     A_out = scale S A_ctx                  (3u + w) A_out
//   dcontext = scale S^T G    A_dctx = scale S^T |G|                 (u + w) A_dctx
//   dQ' = G context^T         A_dQ = |G| A_ctx^T                     E = (2u + w) A_dQ
//   dq = scale S (dQ' - rowsum(S dQ'))       scale S (E + rowsum(S E)) + w scale S |dQ' - rowsum|
//   dK' = V dcontext^T        A_dK = |V| A_dctx^T                    F = (2u + w) A_dK
//   coldot = rowsum(context * dcontext)      G = (2u + 2w) rowsum(A_ctx A_dctx)
//   dk = K' (dK' - coldot)                   K' (F + G) + w K' |dK' - coldot|
//   dv = K' dcontext          A_dv = K' A_dctx                       (3u + w) A_dv
// times 1.01 for the second-order terms left out; plus, for every result, the underflow floor
// (N + d + 8) 2^-126 (1 + the largest |v|, |dy| and magnitude of the head): with k ~ +-50 some
// exp(k - M) and softmax values fall below fp32's smallest normal, where the backends flush or
// keep denormals as they please. The magnitudes sum |terms| that cancel in the
// results (random signs), so the bound sits around a tenth of a typical element: a wrong index, a
// missed rescale or an unrounded-vs-rounded mix-up of whole rows is far outside it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/support/attention_tc_bounds.h"

namespace dd::test::linattn_tc {

// The shapes, rounding constants and helpers of the softmax attention's bounds.
using attn_tc::bitwise_equal;
using attn_tc::Dims;
using attn_tc::kBf16U;
using attn_tc::kSumU;

inline std::vector<double> rounded_values(const Tensor& t) { return attn_tc::rounded(attn_tc::host_values(t)); }

struct Reference {
  std::vector<double> out, out_bound;    // [B, N, hidden]
  std::vector<double> dqkv, dqkv_bound;  // [B, N, 3 hidden]
};

// u: the operand rounding of the backend checked (kBf16U for the tensor-core kernels, 0 for the
// CPU's fp32 sums). qkv and g hold the bf16-rounded inputs.
inline Reference reference(const Dims& c, const std::vector<double>& qkv, const std::vector<double>& g, double u) {
  const int64_t N = c.N, d = c.d, hidden = c.heads * d, C = 3 * hidden;
  const double scale = 1.0 / std::sqrt(double(float(d))), w = (4.0 * N + 4.0 * d + 64) * kSumU, slack = 1.01;
  Reference r;
  r.out.assign(c.B * N * hidden, 0.0), r.out_bound.assign(r.out.size(), 0.0);
  r.dqkv.assign(c.B * N * C, 0.0), r.dqkv_bound.assign(r.dqkv.size(), 0.0);
  using Mat = std::vector<double>;  // row-major
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.heads; ++h) {
      auto q = [&](int64_t n, int64_t i) { return qkv[(b * N + n) * C + h * d + i]; };
      auto k = [&](int64_t n, int64_t i) { return qkv[(b * N + n) * C + hidden + h * d + i]; };
      auto v = [&](int64_t n, int64_t i) { return qkv[(b * N + n) * C + 2 * hidden + h * d + i]; };
      auto gy = [&](int64_t n, int64_t i) { return g[(b * N + n) * hidden + h * d + i]; };
      Mat S(N * d), K(N * d);
      for (int64_t n = 0; n < N; ++n) {
        double m = -INFINITY, s = 0;
        for (int64_t i = 0; i < d; ++i) m = std::max(m, q(n, i));
        for (int64_t i = 0; i < d; ++i) s += std::exp(q(n, i) - m);
        for (int64_t i = 0; i < d; ++i) S[n * d + i] = std::exp(q(n, i) - m) / s;
      }
      for (int64_t i = 0; i < d; ++i) {
        double m = -INFINITY, s = 0;
        for (int64_t n = 0; n < N; ++n) m = std::max(m, k(n, i));
        for (int64_t n = 0; n < N; ++n) s += std::exp(k(n, i) - m);
        for (int64_t n = 0; n < N; ++n) K[n * d + i] = std::exp(k(n, i) - m) / s;
      }
      Mat ctx(d * d, 0.0), actx(d * d, 0.0), dctx(d * d, 0.0), adctx(d * d, 0.0);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t e = 0; e < d; ++e)
          for (int64_t n = 0; n < N; ++n) {
            ctx[i * d + e] += K[n * d + i] * v(n, e);
            actx[i * d + e] += K[n * d + i] * std::abs(v(n, e));
            dctx[i * d + e] += scale * S[n * d + i] * gy(n, e);
            adctx[i * d + e] += scale * S[n * d + i] * std::abs(gy(n, e));
          }
      double big = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < d; ++i) big = std::max({big, std::abs(v(n, i)), std::abs(gy(n, i))});
      for (int64_t i = 0; i < d * d; ++i) big = std::max({big, actx[i], adctx[i]});
      const double floor = (N + d + 8) * std::ldexp(1.0, -126) * (1 + big);
      std::vector<double> coldot(d, 0.0), acoldot(d, 0.0);
      for (int64_t i = 0; i < d; ++i)
        for (int64_t e = 0; e < d; ++e) {
          coldot[i] += ctx[i * d + e] * dctx[i * d + e];
          acoldot[i] += actx[i * d + e] * adctx[i * d + e];
        }
      for (int64_t n = 0; n < N; ++n) {
        const int64_t orow = (b * N + n) * hidden + h * d, drow = (b * N + n) * C + h * d;
        std::vector<double> dQ(d, 0.0), E(d, 0.0);
        for (int64_t e = 0; e < d; ++e) {
          double o = 0, ao = 0;
          for (int64_t i = 0; i < d; ++i) o += S[n * d + i] * ctx[i * d + e], ao += S[n * d + i] * actx[i * d + e];
          r.out[orow + e] = scale * o;
          r.out_bound[orow + e] = slack * (3 * u + w) * scale * ao + floor;
        }
        double rowdot = 0, rowE = 0;
        for (int64_t i = 0; i < d; ++i) {
          double aq = 0;
          for (int64_t e = 0; e < d; ++e) dQ[i] += gy(n, e) * ctx[i * d + e], aq += std::abs(gy(n, e)) * actx[i * d + e];
          E[i] = (2 * u + w) * aq;
          rowdot += S[n * d + i] * dQ[i];
          rowE += S[n * d + i] * E[i];
        }
        for (int64_t i = 0; i < d; ++i) {
          const double Si = S[n * d + i], diff = dQ[i] - rowdot;
          r.dqkv[drow + i] = scale * Si * diff;
          r.dqkv_bound[drow + i] = slack * (scale * Si * (E[i] + rowE) + w * scale * Si * std::abs(diff)) + floor;
          double dK = 0, aK = 0, dv = 0, adv = 0;
          for (int64_t e = 0; e < d; ++e) dK += v(n, e) * dctx[i * d + e], aK += std::abs(v(n, e)) * adctx[i * d + e];
          const double Ki = K[n * d + i], F = (2 * u + w) * aK, G = (2 * u + 2 * w) * acoldot[i];
          r.dqkv[drow + hidden + i] = Ki * (dK - coldot[i]);
          r.dqkv_bound[drow + hidden + i] = slack * (Ki * (F + G) + w * Ki * std::abs(dK - coldot[i])) + floor;
          // dv[n, i] = sum_c K'[n, c] dcontext[c, i]
          for (int64_t cc = 0; cc < d; ++cc) dv += K[n * d + cc] * dctx[cc * d + i], adv += K[n * d + cc] * adctx[cc * d + i];
          r.dqkv[drow + 2 * hidden + i] = dv;
          r.dqkv_bound[drow + 2 * hidden + i] = slack * (3 * u + w) * adv + floor;
        }
      }
    }
  return r;
}

// Every element of got within bound of ref (a NaN fails); reports the count, the worst element and
// how much of its bound the worst ratio used.
inline void expect_within(const std::string& what, const Tensor& got_t, const std::vector<double>& ref,
                          const std::vector<double>& bound) {
  const std::vector<float> got = got_t.to(Device::CPU).to_vector();
  REQUIRE(got.size() == ref.size());
  int64_t bad = 0, worst = -1;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - ref[i]);
    if (!(err <= bound[i])) {
      if (bad++ == 0) worst = int64_t(i);
      continue;
    }
    if (bound[i] > 0 && err / bound[i] > worst_ratio) worst_ratio = err / bound[i];
  }
  INFO(what << ": " << bad << " of " << got.size() << " elements outside the bound"
            << (worst >= 0 ? str_cat("; first at ", worst, ": got ", got[worst], ", reference ", ref[worst],
                                     ", bound ", bound[worst])
                           : std::string())
            << "; largest error / bound among the rest " << worst_ratio);
  CHECK(bad == 0);
}

}  // namespace dd::test::linattn_tc

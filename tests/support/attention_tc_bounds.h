#pragma once
// Float64 reference and per-element error bounds for the bf16 tensor-core attention
// (kernels/cuda/attention_tc.cu), used by tests/emu/test_emu_attention_tc.cpp and
// tests/gpu/test_attention_tc.cpp.
//
// Each result is checked twice:
//  1. against attention computed in float64 from the bf16-rounded inputs (q, k, v and dO, rounded
//     exactly as the kernels round them). What is left is the kernels' own arithmetic, bounded per
//     element below: that bound is tight (the worst element of the emulated cases reaches a sizeable
//     fraction of it), so a wrong index or a mis-rescaled tile cannot hide in it.
//  2. against the fp32 CPU backend (kernels::cpu::attention_*), within
//        |ref(bf16 inputs) - ref(fp32 inputs)|  +  bound 1  +  the CPU's own fp32 bound,
//     where the first term is the exact effect of rounding the inputs to bf16, computed in
//     float64, and the CPU's bound is bound 1 with fp32 in place of the bf16 operand rounding.
//
// bf16 keeps 8 significant bits (7 stored and the implicit one); rounding to nearest even is off
// by at most half an ulp, i.e. relative u = 2^-8 (2^-9 would be a 9-bit significand; the
// conv bounds, tests/support/conv_tc_bounds.h, saw the emulated bf16 exceed that). fp32 sums use
// uf = 2^-23 per addition (twice fp32's unit roundoff: the tensor cores' accumulation order and
// rounding are unspecified) and exp a few ulps.
//
// The bound, first order in these roundoffs, for one (batch, head), scale = fp32 dim_head^-0.5:
//   logits s_ij = scale sum_c q_ic k_jc: |ds_ij| <= E_ij = (d + 4) uf A_ij + uf |s_ij - m_i| + 4 uf,
//     A_ij = scale sum_c |q_ic k_jc|  (fp32 products of bf16 values are exact; their sum, the scale
//     multiply, the max subtraction and exp each round);
//   softmax P_ij = e^{s_ij} / sum_l e^{s_il}: a shift of every logit by at most E_il moves P_ij by a
//     factor within [e^{-E_ij} / Z+, e^{E_ij} / Z-], Z+- = sum_l P_il e^{+-E_il}, so
//     |dP_ij| <= w_ij = P_ij (max(e^{E_ij}/Z- - 1, 1 - e^{-E_ij}/Z+) + (2N + 8) uf),
//     the last term for the row sum and the per-tile rescales;
//   P as an mma operand is rounded again: Pb_ij = w_ij + u (P_ij + w_ij);
//   O_ic = sum_j P_ij v_jc:  Bo = sum_j Pb_ij |v_jc| + (N + 4) uf sum_j (P_ij + Pb_ij) |v_jc|;
//   delta_i = sum_c dO_ic O_ic: Bdelta = sum_c |dO| Bo + (d + 2) uf sum_c |dO| (|O| + Bo)
//     + (N + 2) uf sum_j P_ij |dP_ij| (the CPU sums P dP instead);
//   dP_ij = sum_c dO_ic v_jc: F_ij = (d + 2) uf sum_c |dO_ic v_jc|;
//   dS_ij = P_ij (dP_ij - delta_i): Db0 = w |dP - delta| + (P + w)(F + Bdelta) + 2 uf |dS|,
//     rounded as an operand: Db = Db0 + u (|dS| + Db0);
//   dV_jc = sum_i P_ij dO_ic:  sum_i Pb |dO| + (N + 4) uf sum_i (P + Pb) |dO|;
//   dQ_ic = scale sum_j dS_ij k_jc, dK_jc = scale sum_i dS_ij q_ic: scale (sum Db |k| + (N + 4) uf
//     sum (|dS| + Db) |k|) + uf |dQ|, and the same for dK with q.
// The second-order terms left out are products of two of these bounds (below 1e-4 of them here).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace dd::test::attn_tc {

struct Dims {
  int64_t B, N, heads, d;
  double scale = 1.0;  // of the random inputs
  std::string str() const { return str_cat("B", B, " N", N, " heads ", heads, " d ", d, " scale ", scale); }
  Shape qkv_shape() const { return {B, N, 3 * heads * d}; }
  Shape out_shape() const { return {B, N, heads * d}; }
};

constexpr double kBf16U = 1.0 / 256;            // 2^-8: one bf16 rounding
constexpr double kFp32U = 1.0 / (1 << 24);      // 2^-24: one fp32 rounding (the CPU's P and dS)
constexpr double kSumU = 2.0 / (1 << 24);       // 2^-23: per fp32 addition, see the header

inline double round_bf16(double x) {
  return double(dtype_conv::bf16_to_f32(dtype_conv::f32_to_bf16(float(x))));
}

inline std::vector<double> host_values(const Tensor& t) {
  const std::vector<float> v = t.to(Device::CPU).to_vector();
  return std::vector<double>(v.begin(), v.end());
}

inline std::vector<double> rounded(std::vector<double> v) {
  for (double& x : v) x = round_bf16(x);
  return v;
}

// Attention forward and backward in float64, with the bounds above; u_op: the rounding of P and dS
// as operands (kBf16U for the tensor-core kernels, kFp32U for the CPU backend).
struct Reference {
  std::vector<double> out, dqkv;              // [B, N, hidden], [B, N, 3 hidden]
  std::vector<double> out_bound, dqkv_bound;  // the same shapes
};

inline Reference reference(const Dims& dm, const std::vector<double>& qkv, const std::vector<double>& dy,
                           double u_op) {
  const int64_t N = dm.N, d = dm.d, hidden = dm.heads * d, C = 3 * hidden;
  const double scale = double(1.0f / std::sqrt(float(d))), uf = kSumU;
  const double cN = double(N + 4) * uf;
  Reference r;
  r.out.assign(std::size_t(dm.B * N * hidden), 0.0);
  r.out_bound = r.out;
  r.dqkv.assign(std::size_t(dm.B * N * C), 0.0);
  r.dqkv_bound = r.dqkv;
  const std::size_t NN = std::size_t(N * N);
  std::vector<double> P(NN), W(NN), Pb(NN), dP(NN), F(NN), dS(NN), Db(NN), s(NN), E(NN);
  std::vector<double> O(std::size_t(N * d)), Bo(O.size()), delta(N), Bdelta(N);
  for (int64_t b = 0; b < dm.B; ++b)
    for (int64_t h = 0; h < dm.heads; ++h) {
      auto q = [&](int64_t i, int64_t c) { return qkv[std::size_t((b * N + i) * C + h * d + c)]; };
      auto k = [&](int64_t j, int64_t c) { return qkv[std::size_t((b * N + j) * C + hidden + h * d + c)]; };
      auto v = [&](int64_t j, int64_t c) { return qkv[std::size_t((b * N + j) * C + 2 * hidden + h * d + c)]; };
      auto g = [&](int64_t i, int64_t c) { return dy[std::size_t((b * N + i) * hidden + h * d + c)]; };
      for (int64_t i = 0; i < N; ++i) {
        double m = -INFINITY;
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0.0, a = 0.0;
          for (int64_t c = 0; c < d; ++c) acc += q(i, c) * k(j, c), a += std::fabs(q(i, c) * k(j, c));
          s[i * N + j] = scale * acc;
          E[i * N + j] = double(d + 4) * uf * scale * a;
          m = std::max(m, s[i * N + j]);
        }
        double z = 0.0, zm = 0.0, zp = 0.0;
        for (int64_t j = 0; j < N; ++j) {
          E[i * N + j] += uf * std::fabs(s[i * N + j] - m) + 4 * uf;
          P[i * N + j] = std::exp(s[i * N + j] - m);
          z += P[i * N + j];
        }
        for (int64_t j = 0; j < N; ++j) {
          P[i * N + j] /= z;
          zm += P[i * N + j] * std::exp(-E[i * N + j]);
          zp += P[i * N + j] * std::exp(E[i * N + j]);
        }
        for (int64_t j = 0; j < N; ++j) {
          const double e = E[i * N + j];
          const double rel = std::max(std::exp(e) / zm - 1.0, 1.0 - std::exp(-e) / zp) + double(2 * N + 8) * uf;
          W[i * N + j] = P[i * N + j] * rel;
          Pb[i * N + j] = W[i * N + j] + u_op * (P[i * N + j] + W[i * N + j]);
        }
        for (int64_t c = 0; c < d; ++c) {
          double o = 0.0, bo = 0.0, mag = 0.0;
          for (int64_t j = 0; j < N; ++j) {
            o += P[i * N + j] * v(j, c);
            bo += Pb[i * N + j] * std::fabs(v(j, c));
            mag += (P[i * N + j] + Pb[i * N + j]) * std::fabs(v(j, c));
          }
          O[i * d + c] = o;
          Bo[i * d + c] = bo + cN * mag + uf * std::fabs(o);
          r.out[std::size_t((b * N + i) * hidden + h * d + c)] = o;
          r.out_bound[std::size_t((b * N + i) * hidden + h * d + c)] = Bo[i * d + c];
        }
      }
      if (dy.empty()) continue;
      for (int64_t i = 0; i < N; ++i) {
        double dl = 0.0, bd = 0.0, mag = 0.0, pdp = 0.0;
        for (int64_t c = 0; c < d; ++c) {
          dl += g(i, c) * O[i * d + c];
          bd += std::fabs(g(i, c)) * Bo[i * d + c];
          mag += std::fabs(g(i, c)) * (std::fabs(O[i * d + c]) + Bo[i * d + c]);
        }
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0.0, a = 0.0;
          for (int64_t c = 0; c < d; ++c) acc += g(i, c) * v(j, c), a += std::fabs(g(i, c) * v(j, c));
          dP[i * N + j] = acc;
          F[i * N + j] = double(d + 2) * uf * a;
          pdp += P[i * N + j] * std::fabs(acc);
        }
        delta[i] = dl;
        Bdelta[i] = bd + double(d + 2) * uf * mag + double(N + 2) * uf * pdp;
      }
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j) {
          const std::size_t ij = std::size_t(i * N + j);
          const double x = dP[ij] - delta[i];
          dS[ij] = P[ij] * x;
          const double db0 = W[ij] * std::fabs(x) + (P[ij] + W[ij]) * (F[ij] + Bdelta[i]) + 2 * uf * std::fabs(dS[ij]);
          Db[ij] = db0 + u_op * (std::fabs(dS[ij]) + db0);
        }
      auto put = [&](int64_t n, int64_t chunk, int64_t c, double val, double bound) {
        const std::size_t at = std::size_t((b * N + n) * C + chunk * hidden + h * d + c);
        r.dqkv[at] = val;
        r.dqkv_bound[at] = bound;
      };
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < d; ++c) {
          double dq = 0.0, bq = 0.0, mq = 0.0, dk = 0.0, bk = 0.0, mk = 0.0, dv = 0.0, bv = 0.0, mv = 0.0;
          for (int64_t o = 0; o < N; ++o) {
            const std::size_t no = std::size_t(n * N + o), on = std::size_t(o * N + n);
            dq += dS[no] * k(o, c), bq += Db[no] * std::fabs(k(o, c));
            mq += (std::fabs(dS[no]) + Db[no]) * std::fabs(k(o, c));
            dk += dS[on] * q(o, c), bk += Db[on] * std::fabs(q(o, c));
            mk += (std::fabs(dS[on]) + Db[on]) * std::fabs(q(o, c));
            dv += P[on] * g(o, c), bv += Pb[on] * std::fabs(g(o, c));
            mv += (P[on] + Pb[on]) * std::fabs(g(o, c));
          }
          put(n, 0, c, scale * dq, scale * (bq + cN * mq) + uf * scale * std::fabs(dq));
          put(n, 1, c, scale * dk, scale * (bk + cN * mk) + uf * scale * std::fabs(dk));
          put(n, 2, c, dv, bv + cN * mv);
        }
    }
  return r;
}

// Every element of actual within bound[i] of expected[i]; reports the worst ratio.
inline void expect_within(const std::string& what, const Tensor& actual, const std::vector<double>& expected,
                          const std::vector<double>& bound) {
  const std::vector<float> a = actual.to(Device::CPU).to_vector();
  REQUIRE(a.size() == expected.size());
  REQUIRE(a.size() == bound.size());
  double worst_ratio = 0.0;
  int64_t worst = -1, bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double err = std::fabs(double(a[i]) - expected[i]);
    const double ratio = std::isfinite(a[i]) ? err / (bound[i] + 1e-30) : INFINITY;
    if (!(ratio <= 1.0)) ++bad;
    if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = int64_t(i);
  }
  INFO(what << ": worst |ours - expected| / bound = " << worst_ratio << " at " << worst
            << (worst >= 0 ? str_cat(" (ours ", a[worst], ", expected ", expected[worst], ", bound ", bound[worst], ")")
                           : "")
            << ", " << bad << " of " << a.size() << " outside");
  CHECK(bad == 0);
}

// The two checks of the header for one result: float64 reference on the rounded inputs (ref_r),
// and the CPU backend's fp32 result (cpu) within |ref_r - ref_u| + bound_r + bound_u.
inline void expect_matches(const std::string& what, const Tensor& actual, const std::vector<double>& ref_r,
                           const std::vector<double>& bound_r, const std::vector<double>& ref_u,
                           const std::vector<double>& bound_u, const Tensor& cpu) {
  expect_within(what + " vs float64 on bf16 inputs", actual, ref_r, bound_r);
  // The CPU's own bound is an ingredient of the tolerance below: hold the CPU to it first.
  expect_within(what + ": the fp32 cpu backend vs float64", cpu, ref_u, bound_u);
  // Where the input rounding dominates, |ours - cpu| comes close to |ref_r - ref_u| and the ratio
  // to 1; the margin is what the two checks above leave of bound_r + bound_u.
  std::vector<double> tol(ref_r.size());
  for (std::size_t i = 0; i < tol.size(); ++i) tol[i] = std::fabs(ref_r[i] - ref_u[i]) + bound_r[i] + bound_u[i];
  expect_within(what + " vs the fp32 cpu backend", actual, host_values(cpu), tol);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const std::vector<float> va = a.to(Device::CPU).to_vector(), vb = b.to(Device::CPU).to_vector();
  return va.size() == vb.size() && std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

}  // namespace dd::test::attn_tc

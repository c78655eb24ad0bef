#pragma once
// CPU references for the kernels of tests/emu/warp_kernels.cu, shared by the
// emulated run (tests/emu/test_emu_warp.cpp) and the device run
// (tests/gpu/test_warp_ops.cpp). Written from the PTX ISA and the CUDA
// programming guide, independently of the emulator's code.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "tests/support/compare.h"

namespace dd::warp_test {

struct Half16 {  // 16-bit inputs as the kernel gets them, and their exact values
  std::vector<uint16_t> bits;
  std::vector<double> value;
};

inline Half16 random_16bit(test::Random& rng, int n, bool f16) {
  Half16 h;
  for (double v : rng.normal_f32(n)) {
    const uint16_t b = f16 ? dtype_conv::f32_to_f16(float(v)) : dtype_conv::f32_to_bf16(float(v));
    h.bits.push_back(b);
    h.value.push_back(f16 ? dtype_conv::f16_to_f32(b) : dtype_conv::bf16_to_f32(b));
  }
  return h;
}

inline std::vector<float> as_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
inline std::vector<float> nans(std::size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}
inline bool any_nan(const std::vector<float>& v) {
  for (float x : v)
    if (std::isnan(x)) return true;
  return false;
}

// cvt.rna.tf32.f32 on the host: 11 significant bits, halfway cases away from zero.
inline double tf32_rna(float x) {
  int e = 0;
  const double m = std::frexp(double(x), &e);
  return std::ldexp(std::round(std::ldexp(m, 11)), e - 11);
}

// How many elements of D (M x N) miss C + A B (A: M x K, B: K x N, row-major) in
// double. Products of bf16/f16/tf32 values are exact in fp32; K + 1 terms summed
// in fp32 in any order err by at most about K u (|C| + sum |A B|), u = 2^-24:
// the bound is slack (K + 1) u of that sum per element (slack 1 for the
// emulator, which rounds each addition to nearest; more for the hardware, whose
// internal alignment and rounding are not documented).
inline int mma_errors(const std::vector<float>& D, const std::vector<double>& A, const std::vector<double>& B,
                      const std::vector<float>& C, int M, int N, int K, double slack = 1.0) {
  int bad = 0;
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) {
      double ref = C[r * N + c], mag = std::fabs(ref);
      for (int k = 0; k < K; ++k) {
        ref += A[r * K + k] * B[k * N + c];
        mag += std::fabs(A[r * K + k] * B[k * N + c]);
      }
      const double tol = slack * (K + 1) * std::ldexp(mag, -24);
      if (!(std::fabs(D[r * N + c] - ref) <= tol)) ++bad;
    }
  return bad;
}

// ldmatrix_fragments of a tile whose element (r, c) holds r * 16 + c: register i
// of lane l (out[4 l + i], zero past num) per the PTX ldmatrix figure. Matrix i
// is rows 8 (i % 2).., columns 8 (i / 2).. of the tile; lane l gets row l / 4,
// columns 2 (l % 4) and +1 (.trans: column l / 4, rows 2 (l % 4) and +1).
inline std::vector<uint32_t> ldmatrix_expected(int num, bool trans) {
  std::vector<uint32_t> want(128, 0);
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < num; ++i) {
      const int r = lane / 4, c = 2 * (lane % 4), r0 = 8 * (i % 2), c0 = 8 * (i / 2);
      const uint32_t lo = trans ? (r0 + c) * 16 + c0 + r : (r0 + r) * 16 + c0 + c;
      const uint32_t hi = trans ? (r0 + c + 1) * 16 + c0 + r : lo + 1;
      want[lane * 4 + i] = lo | hi << 16;
    }
  return want;
}

inline std::vector<float> pipeline_expected(const std::vector<float>& src, int tiles) {
  std::vector<float> want(128 * tiles);
  for (int t = 0; t < tiles; ++t)
    for (int e = 0; e < 128; ++e) want[128 * t + e] = 2.0f * src[128 * t + (e + 37) % 128] + float(t);
  return want;
}

inline std::vector<float> halo_expected(const std::vector<float>& x) {
  const int n = int(x.size());
  std::vector<float> want(n);
  for (int i = 0; i < n; ++i) want[i] = ((i > 0 ? x[i - 1] : 0.0f) + x[i]) + (i + 1 < n ? x[i + 1] : 0.0f);
  return want;
}

// The first difference between warp_shuffles' outputs and their meaning (see
// warp_kernels.h), or "" when all match. x holds small integers: sums are exact.
inline std::string shuffle_mismatch(const std::vector<float>& x, const std::vector<float>& out,
                                    const std::vector<uint32_t>& bits) {
  const int threads = int(x.size());
  for (int w = 0; w < threads / 32; ++w) {
    const float* xv = x.data() + 32 * w;
    float total = 0.0f, scan = 0.0f;
    uint32_t ballot = 0;
    bool any = false, all = true;
    for (int l = 0; l < 32; ++l) {
      total += xv[l];
      ballot |= uint32_t(xv[l] > 0.0f) << l;
      any = any || xv[l] > 2.0f;
      all = all && xv[l] > -100.0f;
    }
    for (int l = 0; l < 32; ++l) {
      const float* o = out.data() + 7 * (32 * w + l);
      const uint32_t* b = bits.data() + 3 * (32 * w + l);
      scan += xv[l];
      float seg = 0.0f;
      for (int j = l & ~7; j < (l & ~7) + 8; ++j) seg += xv[j];
      const float want[7] = {total, l == 0 ? total : o[1], scan, xv[(5 * w + 3) % 32], seg,
                             xv[(l & ~15) + (l + 3) % 16], total};
      const uint32_t want_bits[3] = {ballot, uint32_t(any), uint32_t(all)};
      for (int k = 0; k < 7; ++k)
        if (!(o[k] == want[k]))
          return "warp " + std::to_string(w) + " lane " + std::to_string(l) + " output " + std::to_string(k) +
                 ": " + std::to_string(o[k]) + ", want " + std::to_string(want[k]);
      for (int k = 0; k < 3; ++k)
        if (b[k] != want_bits[k])
          return "warp " + std::to_string(w) + " lane " + std::to_string(l) + " vote " + std::to_string(k) + ": " +
                 std::to_string(b[k]) + ", want " + std::to_string(want_bits[k]);
    }
  }
  return "";
}

}  // namespace dd::warp_test

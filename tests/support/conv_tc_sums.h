#pragma once
// Checks of the tensor-core conv's epilogue sums (kernels/cuda/conv2d_tc.cu, conv2d_forward_tc_sums)
// and of the fused GroupNorm forward that uses them, shared by the emulator
// (tests/emu/test_emu_conv2d_tc_sums.cpp) and GPU (tests/gpu/test_conv2d_tc_sums.cpp) tests.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/group_norm_act.h"

namespace dd::test::conv_tc {

// The sums tensor's 2*B*C doubles (it holds them as F32 words).
inline std::vector<double> doubles_of(const Tensor& sums) {
  const std::vector<uint8_t> bytes = sums.to(Device::CPU).to_bytes();
  std::vector<double> v(bytes.size() / sizeof(double));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
  return v;
}

// Each partial is a double sum of exactly representable terms (y is float, y^2 has a 48-bit
// significand), and so is the whole sum over the hw pixels of an image, in another order; the
// reference below sums the same terms in double in pixel order. Each is within gamma_{hw-1} =
// (hw-1) 2^-53 / (1 - (hw-1) 2^-53) of sum |terms| of the exact sum, so they differ by at most
// 2 hw 2^-53 sum |terms|. A dropped, doubled or misplaced row is off by a term itself: ~1e13 times more.
inline void expect_sums(const std::string& what, const Tensor& y, const Tensor& sums, int64_t B, int64_t hw, int64_t C) {
  REQUIRE(sums.numel() == 4 * B * C);
  const std::vector<double> got = doubles_of(sums);
  const std::vector<float> yv = y.to(Device::CPU).to_vector();
  int bad = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      double ref[2] = {0.0, 0.0}, mag[2] = {0.0, 0.0};
      for (int64_t s = 0; s < hw; ++s) {
        const double v = yv[std::size_t((b * hw + s) * C + c)];
        ref[0] += v, ref[1] += v * v;
        mag[0] += std::fabs(v), mag[1] += v * v;
      }
      for (int k = 0; k < 2; ++k) {
        const double g = got[std::size_t(k * B * C + b * C + c)];
        const double bound = 2.0 * double(hw) * std::ldexp(1.0, -53) * mag[k];
        if (!(std::fabs(g - ref[k]) <= bound) && bad++ < 5)
          FAIL_CHECK(what << " sums[" << k << "][" << b << "][" << c << "] = " << g << ", float64 sum of y "
                          << ref[k] << ", bound " << bound);
      }
    }
  CHECK(bad == 0);
}

// mean and rstd: both forwards run gn_stats on sums that differ only in the order of their double
// additions (relative ~1e-15, above), so once rounded to float they differ by at most one float
// ulp each (2^-23 relative), plus 1e-12 absolute for a mean near 0 (the sums' absolute error,
// divided by the group size, is ~hw 2^-53 max|y| < 1e-13 here). y then sees mean and k = rstd gamma
// off by those, and the same float expression rounds again (a few ulps of u = h (s+1) + shift):
//   |dy| <= 1.1 |s+1| |k| (|dmean| + |x - mean| (|drstd| / rstd + 2^-22)) + 2^-20 (|u| + |y|) + 1e-12
// (SiLU's slope lies in [-0.1, 1.1]).
inline void expect_fused_close(const std::string& what, const kernels::GroupNormActOut& f, const kernels::GroupNormActOut& r,
                        const Tensor& h, const Tensor& gamma, const Tensor& beta, const Tensor& scale,
                        const Tensor& shift, int64_t groups) {
  const std::vector<float> fm = f.mean.to(Device::CPU).to_vector(), rm = r.mean.to(Device::CPU).to_vector(), fr = f.rstd.to(Device::CPU).to_vector(),
                           rr = r.rstd.to(Device::CPU).to_vector();
  REQUIRE(fm.size() == rm.size());
  for (std::size_t i = 0; i < fm.size(); ++i) {
    CHECK(std::fabs(fm[i] - rm[i]) <= std::ldexp(1.0, -23) * std::fabs(rm[i]) + 1e-12);
    CHECK(std::fabs(fr[i] - rr[i]) <= std::ldexp(1.0, -23) * std::fabs(rr[i]));
  }
  const std::vector<float> fy = f.y.to(Device::CPU).to_vector(), ry = r.y.to(Device::CPU).to_vector(), hv = h.to(Device::CPU).to_vector(), gv = gamma.to(Device::CPU).to_vector(),
                           bv = beta.to(Device::CPU).to_vector();
  const std::vector<float> sv = scale.defined() ? scale.to(Device::CPU).to_vector() : std::vector<float>(),
                           tv = shift.defined() ? shift.to(Device::CPU).to_vector() : std::vector<float>();
  const int64_t C = h.dim(-1), B = h.dim(0), S = h.numel() / (B * C), D = C / groups;
  int bad = 0;
  for (int64_t i = 0; i < h.numel(); ++i) {
    const int64_t c = i % C, b = i / (S * C), bg = b * groups + c / D;
    const double k = double(rr[bg]) * gv[c], xm = double(hv[i]) - rm[bg];
    const double s1 = scale.defined() ? double(sv[b * C + c]) + 1.0 : 1.0;
    const double u = (xm * k + bv[c]) * s1 + (shift.defined() ? double(tv[b * C + c]) : 0.0);
    const double dmean = std::fabs(double(fm[bg]) - rm[bg]), drel = std::fabs(double(fr[bg]) - rr[bg]) / rr[bg];
    const double bound = 1.1 * std::fabs(s1) * std::fabs(k) * (dmean + std::fabs(xm) * (drel + std::ldexp(1.0, -22))) +
                         std::ldexp(1.0, -20) * (std::fabs(u) + std::fabs(double(ry[i]))) + 1e-12;
    if (!(std::fabs(double(fy[i]) - ry[i]) <= bound) && bad++ < 5)
      FAIL_CHECK(what << " y[" << i << "] = " << fy[i] << ", separate ops " << ry[i] << ", bound " << bound);
  }
  CHECK(bad == 0);
}

}  // namespace dd::test::conv_tc

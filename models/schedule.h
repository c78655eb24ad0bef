#pragma once
// The DDPM variance schedules of seed 003 and the buffers the diffusion reads.
//
// Everything is computed in float64. The seed builds its schedules in float32
// (torch.linspace / cumprod on float32 tensors); float64 is the more accurate
// version of the same formulas, and the per-sample coefficients the kernels use
// are rounded to float32 once, from double, when they are gathered. The parity
// test (tests/test_schedule.cpp) measures the distance to both the float64 and
// the seed's float32 torch versions.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dd::models {

enum class BetaSchedule { Linear, Cosine, Quadratic, Sigmoid };

// "linear", "cosine", "quadratic", "sigmoid"; anything else throws, listing them.
BetaSchedule parse_beta_schedule(const std::string& name);
const char* beta_schedule_name(BetaSchedule s);

// beta_1..beta_T (index 0..T-1), T >= 1, with the seed's constants:
//   linear     linspace(1e-4, 0.02, T)
//   quadratic  linspace(sqrt 1e-4, sqrt 0.02, T)^2
//   sigmoid    sigmoid(linspace(-6, 6, T)) * (0.02 - 1e-4) + 1e-4
//   cosine     1 - abar(i+1)/abar(i), abar(i) = cos(((i/T) + s)/(1 + s) * pi/2)^2 / abar(0), s = 0.008,
//              clipped to [1e-4, 0.9999]
// linspace follows torch's formula (from the start for the first half, from the
// end for the second), so float64 results agree with torch's float64 to an ulp.
std::vector<double> make_betas(BetaSchedule schedule, int T);

// Lin et al. 2023's rescaling to zero terminal SNR (diffusers' rescale_zero_terminal_snr): sqrt(abar)
// shifted so its last value is 0 and scaled so its first is unchanged, then betas from the ratios of
// consecutive abar. The last beta becomes exactly 1 (abar_{T-1} = 0: x_T is pure noise), so a model
// must predict v or x0 there; eps gives no x0 at zero SNR. Needs T >= 2.
std::vector<double> rescale_zero_terminal_snr(const std::vector<double>& betas);

// torch.linspace(start, end, steps) in double (steps >= 1).
std::vector<double> linspace(double start, double end, int steps);

// The seed's buffers, index t = 0..T-1 (the seed's timestep t).
struct Schedule {
  int T = 0;
  std::vector<double> betas;
  std::vector<double> alphas;                         // 1 - beta
  std::vector<double> alphas_cumprod;                 // abar_t = prod_{s<=t} alpha_s
  std::vector<double> alphas_cumprod_prev;            // abar_{t-1}, 1 at t = 0
  std::vector<double> sqrt_recip_alphas;              // 1 / sqrt(alpha_t)
  std::vector<double> sqrt_alphas_cumprod;            // sqrt(abar_t)
  std::vector<double> sqrt_one_minus_alphas_cumprod;  // sqrt(1 - abar_t)
  std::vector<double> posterior_variance;             // beta_t (1 - abar_{t-1}) / (1 - abar_t); 0 at t = 0
  std::vector<double> sqrt_recip_alphas_cumprod;      // 1 / sqrt(abar_t)         (x0 from eps)
  std::vector<double> sqrt_recipm1_alphas_cumprod;    // sqrt(1 / abar_t - 1)     (x0 from eps)

  // Buffers from explicit betas (each in (0, 1), at least one; the last may be 1, zero terminal SNR,
  // where the reciprocal buffers are +inf).
  static Schedule from_betas(std::vector<double> betas);
  static Schedule make(BetaSchedule schedule, int T, bool zero_terminal_snr = false) {
    return from_betas(zero_terminal_snr ? rescale_zero_terminal_snr(make_betas(schedule, T)) : make_betas(schedule, T));
  }
  bool zero_terminal_snr() const { return T > 0 && alphas_cumprod.back() == 0.0; }

  // The seed's extract(): buffer[t_b] for each sample, as a float32 [B] tensor
  // (rounded once from double). Every t_b must lie in [0, T).
  Tensor extract(const std::vector<double>& buffer, const std::vector<int64_t>& t,
                 Device dev = Device::CPU) const;
};

}  // namespace dd::models

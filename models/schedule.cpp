#include "models/schedule.h"

#include <cmath>

#include "engine/error.h"

namespace dd::models {

namespace {
constexpr double kBetaStart = 1e-4, kBetaEnd = 0.02;
constexpr double kCosineS = 0.008;
constexpr double kPi = 3.14159265358979323846;  // torch.pi == math.pi

void check_T(int T, const char* what) {
  DD_CHECK(T >= 1, "schedule: ", what, " needs T >= 1 timesteps, got T = ", T);
}
}  // namespace

BetaSchedule parse_beta_schedule(const std::string& name) {
  if (name == "linear") return BetaSchedule::Linear;
  if (name == "cosine") return BetaSchedule::Cosine;
  if (name == "quadratic") return BetaSchedule::Quadratic;
  if (name == "sigmoid") return BetaSchedule::Sigmoid;
  DD_FAIL("schedule: unknown beta schedule '", name, "' (expected linear, cosine, quadratic or sigmoid)");
}

const char* beta_schedule_name(BetaSchedule s) {
  switch (s) {
    case BetaSchedule::Linear:
      return "linear";
    case BetaSchedule::Cosine:
      return "cosine";
    case BetaSchedule::Quadratic:
      return "quadratic";
    case BetaSchedule::Sigmoid:
      return "sigmoid";
  }
  DD_FAIL("schedule: invalid BetaSchedule value ", static_cast<int>(s));
}

std::vector<double> linspace(double start, double end, int steps) {
  DD_CHECK(steps >= 1, "linspace: steps must be >= 1, got ", steps);
  std::vector<double> v(static_cast<std::size_t>(steps));
  if (steps == 1) {
    v[0] = start;
    return v;
  }
  // torch's CPU kernel: the first half counts up from start, the second half
  // down from end, so both endpoints are exact.
  const double step = (end - start) / (steps - 1);
  const int half = steps / 2;
  for (int i = 0; i < steps; ++i)
    v[static_cast<std::size_t>(i)] = i < half ? start + step * i : end - step * (steps - i - 1);
  return v;
}

std::vector<double> make_betas(BetaSchedule schedule, int T) {
  check_T(T, beta_schedule_name(schedule));
  switch (schedule) {
    case BetaSchedule::Linear:
      return linspace(kBetaStart, kBetaEnd, T);
    case BetaSchedule::Quadratic: {
      std::vector<double> b = linspace(std::sqrt(kBetaStart), std::sqrt(kBetaEnd), T);
      for (double& x : b) x = x * x;
      return b;
    }
    case BetaSchedule::Sigmoid: {
      std::vector<double> b = linspace(-6.0, 6.0, T);
      for (double& x : b) x = 1.0 / (1.0 + std::exp(-x)) * (kBetaEnd - kBetaStart) + kBetaStart;
      return b;
    }
    case BetaSchedule::Cosine: {
      const std::vector<double> x = linspace(0.0, T, T + 1);
      std::vector<double> ac(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        const double c = std::cos(((x[i] / T) + kCosineS) / (1 + kCosineS) * kPi * 0.5);
        ac[i] = c * c;
      }
      const double ac0 = ac[0];
      for (double& a : ac) a = a / ac0;
      std::vector<double> b(static_cast<std::size_t>(T));
      for (std::size_t i = 0; i < b.size(); ++i) {
        const double beta = 1 - (ac[i + 1] / ac[i]);
        b[i] = beta < 1e-4 ? 1e-4 : (beta > 0.9999 ? 0.9999 : beta);
      }
      return b;
    }
  }
  DD_FAIL("schedule: invalid BetaSchedule value ", static_cast<int>(schedule));
}

std::vector<double> rescale_zero_terminal_snr(const std::vector<double>& betas) {
  const std::size_t n = betas.size();
  DD_CHECK(n >= 2, "schedule: zero terminal SNR needs T >= 2 timesteps, got T = ", n);
  std::vector<double> sq(n);
  double prod = 1.0;
  for (std::size_t t = 0; t < n; ++t) {
    prod *= 1.0 - betas[t];
    sq[t] = std::sqrt(prod);
  }
  const double first = sq[0], last = sq[n - 1];
  DD_CHECK(first > last, "schedule: zero terminal SNR needs a decreasing abar (abar_0 = ", first * first,
           ", abar_T = ", last * last, ")");
  std::vector<double> out(n);
  double prev_bar = 0.0;
  for (std::size_t t = 0; t < n; ++t) {
    // diffusers' order: subtract the last, then scale by first / (first - last).
    const double s = (sq[t] - last) * (first / (first - last)), bar = s * s;
    out[t] = t == 0 ? 1.0 - bar : 1.0 - bar / prev_bar;
    prev_bar = bar;
  }
  out[n - 1] = 1.0;  // abar_{T-1} = 0 exactly (the formula gives 0 / abar_{T-2})
  return out;
}

Schedule Schedule::from_betas(std::vector<double> betas) {
  const int T = static_cast<int>(betas.size());
  check_T(T, "from_betas");
  for (int t = 0; t < T; ++t) {
    const double b = betas[static_cast<std::size_t>(t)];
    const bool last = t == T - 1 && T > 1;
    DD_CHECK(b > 0.0 && (b < 1.0 || (last && b == 1.0)), "schedule: beta[", t, "] = ", b,
             last ? " must lie in (0, 1]" : " must lie in (0, 1)");
  }
  Schedule s;
  s.T = T;
  s.betas = std::move(betas);
  const std::size_t n = s.betas.size();
  for (auto* v : {&s.alphas, &s.alphas_cumprod, &s.alphas_cumprod_prev, &s.sqrt_recip_alphas,
                  &s.sqrt_alphas_cumprod, &s.sqrt_one_minus_alphas_cumprod, &s.posterior_variance,
                  &s.sqrt_recip_alphas_cumprod, &s.sqrt_recipm1_alphas_cumprod})
    v->resize(n);
  double prod = 1.0;  // sequential, as torch.cumprod
  for (std::size_t t = 0; t < n; ++t) {
    s.alphas[t] = 1.0 - s.betas[t];
    s.alphas_cumprod_prev[t] = prod;
    prod *= s.alphas[t];
    s.alphas_cumprod[t] = prod;
  }
  for (std::size_t t = 0; t < n; ++t) {
    const double ac = s.alphas_cumprod[t];
    s.sqrt_recip_alphas[t] = std::sqrt(1.0 / s.alphas[t]);
    s.sqrt_alphas_cumprod[t] = std::sqrt(ac);
    s.sqrt_one_minus_alphas_cumprod[t] = std::sqrt(1.0 - ac);
    s.posterior_variance[t] = s.betas[t] * (1.0 - s.alphas_cumprod_prev[t]) / (1.0 - ac);
    s.sqrt_recip_alphas_cumprod[t] = std::sqrt(1.0 / ac);
    s.sqrt_recipm1_alphas_cumprod[t] = std::sqrt(1.0 / ac - 1.0);
  }
  return s;
}

Tensor Schedule::extract(const std::vector<double>& buffer, const std::vector<int64_t>& t, Device dev) const {
  DD_CHECK(static_cast<int64_t>(buffer.size()) == T, "schedule extract: buffer has ", buffer.size(),
           " entries but the schedule has T = ", T);
  DD_CHECK(!t.empty(), "schedule extract: no timesteps given");
  std::vector<float> v(t.size());
  for (std::size_t b = 0; b < t.size(); ++b) {
    DD_CHECK(t[b] >= 0 && t[b] < T, "schedule extract: timestep t[", b, "] = ", t[b], " outside [0, ", T,
             ")");
    v[b] = static_cast<float>(buffer[static_cast<std::size_t>(t[b])]);
  }
  return Tensor::from_vector({static_cast<int64_t>(t.size())}, v, dev);
}

}  // namespace dd::models

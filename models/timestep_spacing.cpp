#include "models/timestep_spacing.h"

#include <cmath>

#include "engine/error.h"

namespace dd::models {

TimestepSpacing parse_timestep_spacing(const std::string& name) {
  if (name == "leading") return TimestepSpacing::Leading;
  if (name == "linspace") return TimestepSpacing::Linspace;
  if (name == "trailing") return TimestepSpacing::Trailing;
  DD_FAIL("unknown timestep spacing '", name, "' (expected leading, linspace or trailing)");
}

const char* timestep_spacing_name(TimestepSpacing s) {
  switch (s) {
    case TimestepSpacing::Leading:
      return "leading";
    case TimestepSpacing::Linspace:
      return "linspace";
    case TimestepSpacing::Trailing:
      return "trailing";
  }
  DD_FAIL("invalid TimestepSpacing value ", static_cast<int>(s));
}

std::vector<int> inference_timesteps(TimestepSpacing spacing, int T, int n, int steps_offset) {
  DD_CHECK(T >= 1 && n >= 1 && n <= T, "sampler steps ", n, " must lie in [1, T = ", T, "]");
  std::vector<int> out(static_cast<std::size_t>(n));
  switch (spacing) {
    case TimestepSpacing::Leading: {
      const int ratio = T / n;
      for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = (n - 1 - i) * ratio + steps_offset;
      break;
    }
    case TimestepSpacing::Linspace:
      // numpy's linspace: start + i * step with step = (stop - start) / (n - 1), the last point exact;
      // np.round rounds half to even, as std::nearbyint does in the default rounding mode.
      for (int i = 0; i < n; ++i) {
        const double v = n == 1 ? 0.0 : (i == n - 1 ? double(T - 1) : i * (double(T - 1) / double(n - 1)));
        out[static_cast<std::size_t>(n - 1 - i)] = static_cast<int>(std::nearbyint(v));
      }
      break;
    case TimestepSpacing::Trailing: {
      // np.arange(T, 0, -T / n): T - i * step while > 0, i.e. n values.
      const double step = double(T) / double(n);
      for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = static_cast<int>(std::nearbyint(T - i * step)) - 1;
      break;
    }
  }
  for (int t : out) DD_CHECK(t >= 0 && t < T, "timestep spacing produced ", t, " outside [0, ", T, ")");
  return out;
}

}  // namespace dd::models

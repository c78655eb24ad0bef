#include "apps/ddpm/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace dd::ddpm {

LrSchedule parse_lr_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::Constant;
  if (name == "linear") return LrSchedule::Linear;
  if (name == "cosine") return LrSchedule::Cosine;
  DD_FAIL("--lr-schedule must be constant, linear or cosine, got '", name, "'");
}

double lr_multiplier(LrSchedule schedule, int64_t k, int64_t warmup, int64_t total) {
  DD_CHECK(k >= 0 && warmup >= 0 && total >= 1, "lr_multiplier: step ", k, ", warm-up ", warmup, ", total ", total);
  // Python's float division of the same integers: the multipliers equal diffusers' bit for bit.
  if (k < warmup) return static_cast<double>(k) / static_cast<double>(std::max<int64_t>(1, warmup));
  const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
  switch (schedule) {
    case LrSchedule::Constant:
      return 1.0;
    case LrSchedule::Linear:
      return std::max(0.0, static_cast<double>(total - k) / span);
    case LrSchedule::Cosine: {
      const double progress = static_cast<double>(k - warmup) / span;
      const double pi = 3.141592653589793;
      return std::max(0.0, 0.5 * (1.0 + std::cos(pi * 0.5 * 2.0 * progress)));
    }
  }
  DD_FAIL("lr_multiplier: invalid schedule ", static_cast<int>(schedule));
}

}  // namespace dd::ddpm

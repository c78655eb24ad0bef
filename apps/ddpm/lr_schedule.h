#pragma once
// The learning-rate schedules of diffusers' get_scheduler (diffusers.optimization), as LambdaLR
// multipliers of the base rate for optimizer step k (0-based; the trainer's step k + 1 runs with it):
//   warm-up (every schedule): k / max(1, W) while k < W
//   constant: 1                                          (diffusers' constant_with_warmup; W = 0: constant)
//   linear:   max(0, (N - k) / max(1, N - W))
//   cosine:   max(0, 0.5 (1 + cos(pi * (k - W) / max(1, N - W))))   (num_cycles 0.5)
// with W = --lr-warmup-steps and N = --steps. Note diffusers' first warm-up step runs at rate 0.
#include <cstdint>
#include <string>

namespace dd::ddpm {

enum class LrSchedule { Constant, Linear, Cosine };
// "constant", "linear", "cosine"; anything else throws naming the flag.
LrSchedule parse_lr_schedule(const std::string& name);

double lr_multiplier(LrSchedule schedule, int64_t k, int64_t warmup, int64_t total);

}  // namespace dd::ddpm

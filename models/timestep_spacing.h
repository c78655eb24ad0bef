#pragma once
// Which of the T training timesteps a sampler of n steps visits, by diffusers' definitions
// (DDIMScheduler.set_timesteps, diffusers 0.31), from the first step (the noisiest) to the last:
//   leading:  (arange(n) * (T // n)).round()[::-1] + steps_offset
//   linspace: linspace(0, T - 1, n).round()[::-1]          (round half to even, as numpy)
//   trailing: round(arange(T, 0, -T / n)) - 1
#include <string>
#include <vector>

namespace dd::models {

enum class TimestepSpacing { Leading, Linspace, Trailing };
// "leading", "linspace", "trailing"; anything else throws, naming the flag's choices.
TimestepSpacing parse_timestep_spacing(const std::string& name);
const char* timestep_spacing_name(TimestepSpacing s);

// Throws unless 1 <= n <= T.
std::vector<int> inference_timesteps(TimestepSpacing spacing, int T, int n, int steps_offset = 0);

}  // namespace dd::models

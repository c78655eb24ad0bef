#pragma once
// sample_ddpm's sampler flags, and how they fill a SampleRequest for a model of T timesteps. Each
// flag names the diffusers (or improved-diffusion) setting it corresponds to in its help text.
#include <string>

#include "apps/ddpm/sampler.h"

namespace CLI {
class App;
}

namespace dd::ddpm {

struct SamplerFlags {
  std::string sampler = "ddpm";
  int steps = 0;  // 0 = the sampler's default
  std::string spacing;  // "" = the sampler's default
  std::string respacing;  // respaced: improved-diffusion's section counts ("ddim50", "250", "10,15,20")
  std::string variance_type = "fixed_small";
  bool clip_sample = false;  // ddpm / respaced
  bool no_clip = false;      // ddim
  double eta = 0.0;
  int order = 2;
  bool karras_sigmas = false;
  bool thresholding = false;
  double thresholding_ratio = 0.995;
  double sample_max_value = 1.0;

  void add_to(CLI::App& app);
  // Fills req's sampler fields; throws naming the flag on a bad value.
  void apply(SampleRequest& req, int T) const;
};

}  // namespace dd::ddpm

#pragma once
// sample_ddpm's sampler flags, and how they fill a SampleRequest for a model of T timesteps. Each
// flag names the diffusers (or improved-diffusion) setting it corresponds to in its help text.
#include <string>

#include <nlohmann/json.hpp>

#include "apps/ddpm/sampler.h"

namespace CLI {
class App;
class Option;
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
  // Every field, for a job's identity (apps/ddpm/sample_job.h).
  nlohmann::json to_json() const;
  // Whether --variance-type was given (a diffusers scheduler's variance_type applies otherwise).
  bool variance_type_given() const;

 private:
  const CLI::Option* variance_option_ = nullptr;
};

}  // namespace dd::ddpm

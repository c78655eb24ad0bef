#pragma once
// ddpm_tool's FID subcommands:
//   fid        --inception W --gen SPEC --ref SPEC   the Fréchet Inception Distance between two sets
//   fid-stats  --inception W --data SPEC --out F     a set's statistics, saved for later `fid --ref F`
// where SPEC is a statistics file, a dataset or an image folder (apps/ddpm/fid_eval.h), and --gen may
// also be a model (weights file, run folder, diffusers folder) sampled on the fly with sample_ddpm's
// sampler flags.
#include <cstdint>
#include <string>

#include "apps/ddpm/sampler_flags.h"

namespace CLI {
class App;
}

namespace dd::ddpm {

struct FidCommand {
  std::string inception, gen, ref, device = "auto", save_gen_stats, save_ref_stats;
  std::string precision = "fp32";  // of the sampling when --gen is a model (Inception runs fp32 always)
  bool conv_autotune = false;      // of the sampling's tensor-core convolutions (kernels/conv_autotune.h)
  int batch_size = 50;       // Inception batch
  int n = 10000;             // images sampled when --gen is a model
  int sample_batch = 128;    // images denoised at once when --gen is a model
  uint64_t seed = 0;
  SamplerFlags flags;
  CLI::App* add_to(CLI::App& app);
  int run() const;
};

struct FidStatsCommand {
  std::string inception, data, out, device = "auto";
  int batch_size = 50;
  CLI::App* add_to(CLI::App& app);
  int run() const;
};

}  // namespace dd::ddpm

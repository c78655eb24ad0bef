#pragma once
// The training run behind train_ddpm: data, model, diffusion, Adam, EMA, periodic sample grids and
// checkpoints in the run folder, and --resume. A run trained N steps in one go and one trained k
// steps, stopped and resumed to N end with bitwise-identical weights on the CPU: everything that
// drives the computation (weights, EMA, Adam moments and steps, the step, the RNG and the data
// order) is in the checkpoint.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/ddpm/options.h"

namespace dd::dist {
class Comm;
}

namespace dd::ddpm {

// Files of a run folder.
struct RunFiles {
  std::string dir;
  std::string checkpoint() const { return dir + "/checkpoint.safetensors"; }
  std::string weights() const { return dir + "/model.safetensors"; }
  std::string metrics() const { return dir + "/metrics.csv"; }
  std::string loss_curve() const { return dir + "/loss_curve.png"; }
  std::string samples_dir() const { return dir + "/samples"; }
  std::string config() const { return dir + "/config.json"; }
  std::string conv_autotune() const { return dir + "/conv_autotune.tsv"; }  // --conv-autotune's choices
};

struct TrainSummary {
  int64_t start_step = 0;
  int64_t end_step = 0;
  double last_loss = 0.0;      // mean loss of the last logged interval
  double images_per_s = 0.0;   // over this invocation
  bool interrupted = false;    // stopped by SIGINT/SIGTERM (a checkpoint was written)
};

// `explicit_keys`: the option keys the user set on the command line (for --resume conflicts).
// `comm`: data parallel over its ranks (apps/dist/comm.h; nullptr or world size 1: one process).
// Then --batch-size is the global batch, each rank trains on its slice with its own noise stream,
// gradients are averaged before the clip and Adam, and rank 0 alone writes files and logs.
TrainSummary train(const TrainOptions& opts, const std::vector<std::string>& explicit_keys = {},
                   std::FILE* log = stderr, const dist::Comm* comm = nullptr);

}  // namespace dd::ddpm

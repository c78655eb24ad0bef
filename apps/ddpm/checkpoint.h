#pragma once
// The training state of a run folder (checkpoint.safetensors): model weights, EMA weights, Adam's
// moments (all under their state_dict names, PyTorch layouts) and, in the metadata, the step, the
// RNG state, the data order, Adam's per-parameter step counts, the EMA counters and the options.
#include <string>

#include <nlohmann/json.hpp>

#include "apps/data/loader.h"
#include "autograd/adam.h"
#include "engine/safetensors.h"
#include "models/ema.h"
#include "models/params.h"
#include "models/weights.h"

namespace dd::ddpm {

struct TrainState {
  int64_t step = 0;
  double elapsed_s = 0.0;  // training wall time over all invocations
};

void save_checkpoint(const std::string& path, const nlohmann::json& options, const models::ModelConfig& cfg,
                     const models::ParamSet& params, ag::Adam& adam, const models::Ema* ema, const data::Loader& loader,
                     const Generator& gen, const TrainState& state);

// The options the run was started with (metadata "train").
nlohmann::json checkpoint_options(const SafeTensorsFile& ckpt, const std::string& path);

// Loads everything back; errors name the file and what does not fit (e.g. a different model).
void restore_checkpoint(const SafeTensorsFile& ckpt, const std::string& path, models::ParamSet& params, ag::Adam& adam,
                        models::Ema* ema, data::Loader& loader, Generator& gen, TrainState& state);

}  // namespace dd::ddpm

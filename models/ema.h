#pragma once
// An exponential moving average of the model's weights for sampling, with the
// schedule of lucidrains' ema-pytorch (as denoising-diffusion-pytorch's Trainer
// uses it: beta 0.995, update_every 10, update_after_step 100):
//   update(step) does nothing unless step % update_every == 0;
//   while step <= update_after_step the shadow copies the weights;
//   after that shadow = lerp(shadow, param, 1 - decay) = decay * shadow + (1 - decay) * param.
// ema-pytorch also warms the decay up (min(beta, 1 - (1 + n / inv_gamma)^-power),
// n = step - update_after_step - 1, and 0 while n <= 0); that is optional here
// (EmaConfig::warmup), off by default so the decay is the fixed one asked for.
// The lerp uses torch's two-branch formula, so it is bitwise deterministic and
// exact at weight 1.
#include <cstdint>
#include <vector>

#include "autograd/var.h"

namespace dd::models {

struct EmaConfig {
  double decay = 0.995;
  int64_t update_every = 10;
  int64_t update_after_step = 100;
  bool warmup = false;
  double inv_gamma = 1.0;
  double power = 2.0 / 3.0;
};

// Everything a checkpoint needs to resume the average exactly.
struct EmaState {
  std::vector<Tensor> shadow;  // one per parameter, same order and shapes
  int64_t last_step = -1;      // the last step passed to update(); -1 before the first
  int64_t averaged = 0;        // moving-average updates applied so far
  bool initted = false;        // ema-pytorch's flag: the first average starts from a copy
};

class Ema {
 public:
  // Tracks params (the model's Vars, shared); the shadow starts as a copy of them. The shadow is
  // one flat buffer laid out as the parameters; param_arena, when given, is the flat buffer the
  // parameters are views into, in order (models::ParamSet::param_arena()), and the average then
  // runs over the two buffers as one tensor (one launch on the GPU; the same bits: it is elementwise).
  explicit Ema(std::vector<ag::Var> params, EmaConfig config = {}, Tensor param_arena = Tensor());

  // Call once after each optimizer step with that step's index, counting from 0
  // (ema-pytorch's internal counter). Steps must increase.
  void update(int64_t step);
  // The decay an averaging update at this step uses (0 means "copy").
  double decay_at(int64_t step) const;

  const std::vector<Tensor>& shadow() const { return shadow_; }
  const std::vector<ag::Var>& params() const { return params_; }
  const EmaConfig& config() const { return config_; }

  // Writes the shadow into other parameters of the same shapes (e.g. a second
  // model instance kept for sampling).
  void copy_to(const std::vector<ag::Var>& params) const;
  // Exchanges the tracked weights with the shadow: swap(), sample, swap() again.
  void swap();

  EmaState state() const;  // deep copies
  // Restores a state taken from an Ema over parameters of the same shapes.
  void load_state(const EmaState& state);

 private:
  void copy_params();
  void check_targets(const char* op, const std::vector<ag::Var>& params) const;

  std::vector<ag::Var> params_;
  EmaConfig config_;
  std::vector<Tensor> shadow_;  // views into shadow_arena_
  Tensor shadow_arena_, param_arena_;
  int64_t last_step_ = -1;
  int64_t averaged_ = 0;
  bool initted_ = false;
};

}  // namespace dd::models

#pragma once
// torch.optim.Adam over a list of parameters, and clip_grad_norm_.
#include <cstdint>
#include <vector>

#include "autograd/var.h"
#include "kernels/adam.h"

namespace dd::ag {

class Adam {
 public:
  // param_arena and grad_arena, when given, are the flat buffers the parameters' values and
  // gradient buffers are views into, in order (models::ParamSet's arenas). A step in which every
  // parameter has a gradient and one step count then updates all of them as one tensor (one
  // multi-tensor slot: one launch on the GPU); otherwise, or without arenas, tensor by tensor.
  // Both give the same bits: the update is elementwise.
  Adam(std::vector<Var> params, kernels::AdamHyper hyper, Tensor param_arena = Tensor(),
       Tensor grad_arena = Tensor());

  // One update of every parameter that has a gradient (as PyTorch, a
  // parameter without one is skipped and its moments are untouched).
  void step();
  // The same update with every gradient multiplied by grad_scale[0] first (a float tensor on the
  // parameters' device: clip_grad_norm_factor's), so the clip needs no host round trip; bitwise
  // what clip_grad_norm followed by step() gives.
  void step(const Tensor& grad_scale);
  void zero_grad();

  // Updates applied to each parameter (PyTorch keeps state['step'] per
  // parameter and skips parameters without a gradient).
  std::vector<int64_t>& param_steps() { return steps_; }
  const kernels::AdamHyper& hyper() const { return hyper_; }
  void set_lr(float lr) { hyper_.lr = lr; }
  // First and second moments, one per parameter, same order (for checkpoints): views into two
  // moment arenas laid out as the parameters. Load into them in place (copy_from); a tensor
  // assigned instead still works but takes that parameter's moments off the flat path.
  std::vector<Tensor>& exp_avg() { return m_; }
  std::vector<Tensor>& exp_avg_sq() { return v_; }
  const std::vector<Var>& params() const { return params_; }
  // Whether the last step() ran as one flat update (for tests and the bench).
  bool last_step_flat() const { return last_flat_; }

  // For CUDA graphs (a captured step replays without the host): while bound, step() runs the flat
  // update reading its per-step scalars from `scalars` (kernels::adam_step_scalars_tensor on the
  // parameters' device) and throws if the flat update cannot run. The replayer writes
  // next_step_scalars() there before each replay and calls advance_step() after it, which is what
  // the replayed step() would have done on the host. Same arithmetic: the same bits as unbound.
  void bind_step_scalars(Tensor scalars);
  void unbind_step_scalars() { bound_scalars_ = Tensor(); }
  kernels::AdamStepScalars next_step_scalars() const;
  void advance_step();

 private:
  bool flat_ready() const;

  std::vector<Var> params_;
  kernels::AdamHyper hyper_;
  std::vector<Tensor> m_, v_;
  Tensor param_arena_, grad_arena_, m_arena_, v_arena_;
  std::vector<int64_t> steps_;
  bool last_flat_ = false;
  Tensor bound_scalars_, one_;  // one_: the unit grad scale of an unclipped bound step
};

// torch.nn.utils.clip_grad_norm_: total L2 norm over all gradients; when it
// exceeds max_norm, every gradient is scaled by max_norm / (norm + 1e-6).
// Returns the norm before clipping.
// grad_arena: as Adam's; when every parameter has a gradient and the gradients tile it, the scale
// (and, off the CPU, the norm) runs over it as one tensor. The CPU keeps the per-tensor norm: its
// double sum is chunked per tensor, and resumed runs must stay bitwise identical.
double clip_grad_norm(const std::vector<Var>& params, double max_norm, const Tensor& grad_arena = Tensor());

// The same clip for a step that reads nothing back: returns [factor, norm] as a 2-element float
// tensor on the parameters' device and leaves the gradients as they are; Adam::step(factor)
// applies it. The norm is read (one copy) only when someone wants to log it.
Tensor clip_grad_norm_factor(const std::vector<Var>& params, double max_norm, const Tensor& grad_arena = Tensor());

}  // namespace dd::ag

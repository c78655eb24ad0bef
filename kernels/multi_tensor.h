#pragma once
// The optimizer's passes over every parameter at once: Adam, the EMA update,
// the global gradient norm and the clip. The U-Net has a few hundred parameter
// tensors, many of them tiny (biases, norms); one launch per tensor would be
// launch-bound on the GPU, so the CUDA backend packs many tensors into each
// launch (kernels/cuda/multi_tensor.cu), and runs a list of one tensor (a flat
// parameter arena, models::ParamSet) as a single launch whatever its size. Element arithmetic is the same as the
// single-tensor ops (kernels/adam_math.h, torch's lerp), so results match them.
#include <vector>

#include "engine/tensor.h"
#include "kernels/adam.h"

namespace dd::kernels {

struct AdamSlot {
  Tensor param;  // updated in place (Tensor copies share storage)
  Tensor grad;
  Tensor m, v;   // updated in place
};
// One Adam step of every slot with the same step scalars.
void adam_update_multi(const std::vector<AdamSlot>& slots, const AdamStepScalars& s);

// shadow_i = torch.lerp(shadow_i, param_i, w) for every i, in place.
void ema_update_multi(const std::vector<Tensor>& shadows, const std::vector<Tensor>& params, float w);

// sum over every tensor of sum of x^2, accumulated in double with a fixed
// chunking (bitwise reproducible; not bitwise equal across backends).
double sum_squares_multi(const std::vector<Tensor>& ts);

// x_i *= alpha for every i, in place.
void scale_multi_(const std::vector<Tensor>& ts, float alpha);

// clip_grad_norm_ without a host round trip (the GPU step reads nothing back): a 2-element float
// tensor on dev, [0] = the factor every gradient is multiplied by, min(1, max_norm / (norm + 1e-6)),
// [1] = the norm. The norm comes from sum_squares_multi's double sum and the factor is computed in
// double and rounded once, as ag::clip_grad_norm does on the host.
Tensor clip_coefficient_multi(const std::vector<Tensor>& grads, double max_norm, Device dev);
// adam_update_multi with every gradient first multiplied by grad_scale[0] (a float on the slots'
// device, e.g. clip_coefficient_multi's), rounded as a separate multiply: bitwise what scaling the
// gradients in place and then calling adam_update_multi gives, without a pass over them.
// step_scalars: undefined (use s), or an AdamStepScalars held in a float tensor on the slots'
// device (adam_step_scalars_tensor), read by the kernel instead of s: the scalars a captured CUDA
// graph step needs, rewritten before each replay.
void adam_update_multi_scaled(const std::vector<AdamSlot>& slots, const AdamStepScalars& s, const Tensor& grad_scale,
                              const Tensor& step_scalars = Tensor());

// A float tensor on dev big enough for one AdamStepScalars, and the host-to-device write of one
// into it (cuda_mem::write_small on the GPU: no copy, no wait, legal outside a capture only).
Tensor adam_step_scalars_tensor(Device dev);
void write_adam_step_scalars(Tensor& dst, const AdamStepScalars& s);

namespace cpu {
void adam_update_multi(const std::vector<AdamSlot>& slots, const AdamStepScalars& s);
void ema_update_multi(const std::vector<Tensor>& shadows, const std::vector<Tensor>& params, float w);
double sum_squares_multi(const std::vector<Tensor>& ts);
void scale_multi_(const std::vector<Tensor>& ts, float alpha);
Tensor clip_coefficient_multi(const std::vector<Tensor>& grads, double max_norm, Device dev);
void adam_update_multi_scaled(const std::vector<AdamSlot>& slots, const AdamStepScalars& s, const Tensor& grad_scale,
                              const Tensor& step_scalars = Tensor());
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
void adam_update_multi(const std::vector<AdamSlot>& slots, const AdamStepScalars& s);
void ema_update_multi(const std::vector<Tensor>& shadows, const std::vector<Tensor>& params, float w);
double sum_squares_multi(const std::vector<Tensor>& ts);
void scale_multi_(const std::vector<Tensor>& ts, float alpha);
Tensor clip_coefficient_multi(const std::vector<Tensor>& grads, double max_norm, Device dev);
void adam_update_multi_scaled(const std::vector<AdamSlot>& slots, const AdamStepScalars& s, const Tensor& grad_scale,
                              const Tensor& step_scalars = Tensor());
}  // namespace cuda
#endif

}  // namespace dd::kernels

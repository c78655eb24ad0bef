#pragma once
// The interface the diffusion process drives: a network that predicts the noise in x_t.
// The U-Net implements it; tests substitute tiny networks.
#include "autograd/var.h"

namespace dd::models {

class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // x: [B, H, W, C] (NHWC). t: [B] float32 holding integer timesteps, on x's device.
  // x_self_cond: [B, H, W, C] or an undefined Var; a model without self-conditioning ignores it,
  // a model with it treats an undefined one as zeros (as the seed does).
  virtual ag::Var forward(const ag::Var& x, const Tensor& t, const ag::Var& x_self_cond) = 0;
  virtual bool self_condition() const = 0;
  virtual int channels() const = 0;
};

}  // namespace dd::models

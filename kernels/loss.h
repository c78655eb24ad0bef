#pragma once
// The DDPM training losses between predicted and true noise, mean-reduced as
// in the seed's p_losses:
//   L1    F.l1_loss         mean |d|
//   L2    F.mse_loss        mean d^2
//   Huber F.smooth_l1_loss  mean (0.5 d^2 if |d| < 1 else |d| - 0.5)   (beta = 1)
// with d = pred - target. The forward sums in double with a fixed chunking
// (bitwise reproducible) and returns a scalar (shape {}) tensor; the backward
// gives d(dloss * loss)/d pred with PyTorch's arithmetic (sign(0) = 0 for L1).
#include <string>

#include "engine/tensor.h"

namespace dd::kernels {

enum class LossType { L1, L2, Huber };

// "l1", "l2", "huber" (the seed's loss_type strings); anything else throws, naming it.
LossType parse_loss_type(const std::string& name);
const char* loss_type_name(LossType type);

Tensor loss_forward(const Tensor& pred, const Tensor& target, LossType type);
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, float dloss);
// The same with dloss a one-element float tensor on the operands' device (the autograd seed): the
// GPU reads it in the kernel, so the backward does not wait for the host.
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, const Tensor& dloss);

// Per-sample weighted (min-SNR weighting): mean over every element of w[b] * loss term, b the
// element's sample (pred is [B, ...], weights [B]); the backward's dloss is a one-element tensor on the
// operands' device. With all weights 1 the values equal the unweighted ones up to the product's rounding.
Tensor loss_forward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights);
Tensor loss_backward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights,
                              const Tensor& dloss);

namespace cpu {
Tensor loss_forward(const Tensor& pred, const Tensor& target, LossType type);
Tensor loss_forward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights);
Tensor loss_backward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights,
                              const Tensor& dloss);
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, float dloss);
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, const Tensor& dloss);
}  // namespace cpu

#ifdef DD_WITH_CUDA
namespace cuda {
Tensor loss_forward(const Tensor& pred, const Tensor& target, LossType type);
Tensor loss_forward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights);
Tensor loss_backward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights,
                              const Tensor& dloss);
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, float dloss);
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, const Tensor& dloss);
}  // namespace cuda
#endif

}  // namespace dd::kernels

#pragma once
// One Adam update of one parameter tensor, with torch.optim.Adam's arithmetic
// (PyTorch 2.x, foreach path):
//   g  = grad (+ weight_decay * param)
//   m  = lerp(m, g, 1 - beta1)
//   v  = beta2 * v + (1 - beta2) * g * g
//   param -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The bias corrections are computed in double on the host, as Python does,
// and rounded to float once, as PyTorch does when it passes them to a kernel.
#include <cstdint>

#include "engine/tensor.h"

namespace dd::kernels {

struct AdamHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  // false: torch.optim.Adam's L2 decay (weight_decay * param added to the gradient); true:
  // torch.optim.AdamW's decoupled decay (param *= 1 - lr * weight_decay before the update).
  bool decoupled = false;
};

// The per-step scalars every element uses (step counts from 1).
struct AdamStepScalars {
  float lerp_weight;     // 1 - beta1
  float beta2;
  float one_minus_beta2;
  float step_size;       // lr / (1 - beta1^t)
  float bc2_sqrt;        // sqrt(1 - beta2^t)
  float eps;
  float weight_decay;    // L2 (Adam); 0 for AdamW
  float decay = 1.0f;    // AdamW: 1 - lr * weight_decay rounded to float (as torch's mul_ by a Python float); 1 = none
};
AdamStepScalars adam_scalars(const AdamHyper& h, int64_t step);

void adam_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamStepScalars& s);

namespace cpu {
void adam_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamStepScalars& s);
// The same update over n elements of raw arrays, on the calling thread (no OpenMP region): the
// building block of the chunked multi-tensor update. Bitwise adam_update's per element.
void adam_update_serial(float* p, const float* g, float* m, float* v, int64_t n, const AdamStepScalars& s);
}
#ifdef DD_WITH_CUDA
namespace cuda {
void adam_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamStepScalars& s);
}
#endif

}  // namespace dd::kernels

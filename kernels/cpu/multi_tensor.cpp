#include "kernels/multi_tensor.h"

#include "kernels/adam_math.h"
#include "kernels/cpu/parallel.h"

namespace dd::kernels::cpu {

// On the CPU a launch costs nothing: the list is walked one tensor at a time,
// each tensor's loop threaded as in the single-tensor ops.
void adam_update_multi(const std::vector<AdamSlot>& slots, const AdamStepScalars& s) {
  for (const AdamSlot& a : slots) {
    Tensor p = a.param, m = a.m, v = a.v;
    cpu::adam_update(p, a.grad, m, v, s);
  }
}

void ema_update_multi(const std::vector<Tensor>& shadows, const std::vector<Tensor>& params, float w) {
  for (std::size_t t = 0; t < shadows.size(); ++t) {
    Tensor shadow = shadows[t];
    float* s = shadow.data();
    const float* p = params[t].data();
    const int64_t n = shadow.numel();
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
    for (int64_t i = 0; i < n; ++i) s[i] = lerp_f(s[i], p[i], w);
  }
}

double sum_squares_multi(const std::vector<Tensor>& ts) {
  double total = 0.0;
  for (const Tensor& t : ts) {
    const float* p = t.data();
    total += deterministic_sum(t.numel(), [p](int64_t i) { return static_cast<double>(p[i]) * p[i]; });
  }
  return total;
}

void scale_multi_(const std::vector<Tensor>& ts, float alpha) {
  for (const Tensor& t0 : ts) {
    Tensor t = t0;
    float* p = t.data();
    const int64_t n = t.numel();
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
    for (int64_t i = 0; i < n; ++i) p[i] *= alpha;
  }
}

}  // namespace dd::kernels::cpu

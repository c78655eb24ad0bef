#include "kernels/multi_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/adam_math.h"

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

namespace {
// sum p[i]^2 in double over kLanes independent accumulators (lane i % kLanes, folded in a fixed
// tree): a single dependent add chain made the grad norm latency-bound, 25 ms a CIFAR-10 step on
// 2 threads (5.7 GB/s, bench_adam --cpu). A float squared is exact in double, so whether the
// compiler contracts it into an FMA changes nothing.
double sum_squares_lanes(const float* p, int64_t n) {
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(p[i + j]) * p[i + j];
  for (int j = 0; i < n; ++i, ++j) acc[j] += static_cast<double>(p[i]) * p[i];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

constexpr int64_t kSquaresChunk = 8192;
}  // namespace

// Every tensor cut into fixed chunks, all of them in one parallel loop (not a region per tensor:
// the CIFAR-10 preset has 293), each tensor's chunk sums added in order, then the tensors' sums:
// the bits depend on the tensors alone, not on the threads (sum_squares of one tensor is this).
double sum_squares_multi(const std::vector<Tensor>& ts) {
  std::vector<std::pair<const float*, int64_t>> chunks;
  for (const Tensor& t : ts)
    for (int64_t off = 0; off < t.numel(); off += kSquaresChunk)
      chunks.emplace_back(t.data() + off, std::min(kSquaresChunk, t.numel() - off));
  const int64_t n = static_cast<int64_t>(chunks.size());
  std::vector<double> partial(chunks.size());
#pragma omp parallel for schedule(static) if (n > 4)
  for (int64_t c = 0; c < n; ++c) partial[c] = sum_squares_lanes(chunks[c].first, chunks[c].second);
  double total = 0.0;
  std::size_t c = 0;
  for (const Tensor& t : ts) {
    double sum = 0.0;
    for (int64_t off = 0; off < t.numel(); off += kSquaresChunk) sum += partial[c++];
    total += sum;
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

Tensor clip_coefficient_multi(const std::vector<Tensor>& grads, double max_norm, Device) {
  const double norm = std::sqrt(sum_squares_multi(grads));
  const double coef = max_norm / (norm + 1e-6);
  return Tensor::from_vector({2}, {coef < 1.0 ? static_cast<float>(coef) : 1.0f, static_cast<float>(norm)});
}

void adam_update_multi_scaled(const std::vector<AdamSlot>& slots, const AdamStepScalars& s_arg,
                              const Tensor& grad_scale, const Tensor& step_scalars) {
  AdamStepScalars s = s_arg;
  if (step_scalars.defined()) std::memcpy(&s, step_scalars.raw_data(), sizeof s);
  const float scale = grad_scale.data()[0];
  if (scale == 1.0f) return cpu::adam_update_multi(slots, s);
  // The scaled gradient is stored, then read by the plain update (another translation unit), so
  // the product is rounded on its own whatever the compiler contracts: bitwise the in-place scale
  // followed by adam_update_multi, without modifying a gradient that may share its storage. Each
  // thread scales a cache-sized chunk of its range into its own buffer and updates that chunk:
  // a whole scaled copy per step (143 MB for the CIFAR-10 preset, freshly allocated) made this
  // op 21% of the CPU step, 337 ms of 1.59 s (bench_train_step --cpu --profile, 2026-11-27).
  constexpr int64_t kChunk = 4096;  // 16 KB of scaled gradient: stays in L1/L2 for the update
  for (const AdamSlot& a : slots) {
    const int64_t n = a.grad.numel();
    const float* g = a.grad.data();
    Tensor pt = a.param, mt = a.m, vt = a.v;
    float* p = pt.data();
    float* m = mt.data();
    float* v = vt.data();
    const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel if (n > (1 << 15))
    {
      alignas(64) float gs[kChunk];
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t lo = c * kChunk, len = std::min(kChunk, n - lo);
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) gs[i] = g[lo + i] * scale;
        cpu::adam_update_serial(p + lo, gs, m + lo, v + lo, len, s);
      }
    }
  }
}

}  // namespace dd::kernels::cpu

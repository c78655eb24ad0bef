#include "kernels/loss.h"

#include <cmath>

#include "engine/error.h"
#include "kernels/cpu/parallel.h"

namespace dd::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;

// A serial chain of double adds costs one add latency per element; summing
// blocks of 8 terms as a fixed tree first cuts the chain eightfold while the
// order stays fixed (bitwise reproducible).
constexpr int64_t kBlock = 8;

template <typename F>
Tensor mean_of(const Tensor& pred, const Tensor& target, F term) {
  const float* p = pred.data();
  const float* t = target.data();
  const int64_t n = pred.numel();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  // The difference is taken in float, as PyTorch does; the sum in double.
  const double s = deterministic_sum(
      blocks,
      [=](int64_t j) {
        double v[kBlock] = {};
        const int64_t lo = j * kBlock, m = n - lo < kBlock ? n - lo : kBlock;
        for (int64_t k = 0; k < m; ++k) v[k] = term(static_cast<double>(p[lo + k] - t[lo + k]));
        return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
      },
      1024);
  return Tensor::scalar(static_cast<float>(s / static_cast<double>(n)));
}

// mean_of with each term times its sample's weight (elements [b * inner, (b + 1) * inner) are sample b).
template <typename F>
Tensor weighted_mean_of(const Tensor& pred, const Tensor& target, const Tensor& weights, F term) {
  const float* p = pred.data();
  const float* t = target.data();
  const float* w = weights.data();
  const int64_t n = pred.numel(), inner = n / pred.dim(0);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const double s = deterministic_sum(
      blocks,
      [=](int64_t j) {
        double v[kBlock] = {};
        const int64_t lo = j * kBlock, m = n - lo < kBlock ? n - lo : kBlock;
        for (int64_t k = 0; k < m; ++k)
          v[k] = term(static_cast<double>(p[lo + k] - t[lo + k])) * static_cast<double>(w[(lo + k) / inner]);
        return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
      },
      1024);
  return Tensor::scalar(static_cast<float>(s / static_cast<double>(n)));
}

template <typename F>
Tensor map_diff(const Tensor& pred, const Tensor& target, F f) {
  Tensor out = Tensor::empty(pred.shape());
  const float* p = pred.data();
  const float* t = target.data();
  float* o = out.data();
  const int64_t n = pred.numel();
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) o[i] = f(p[i] - t[i]);
  return out;
}
}  // namespace

Tensor loss_forward(const Tensor& pred, const Tensor& target, LossType type) {
  switch (type) {
    case LossType::L1: return mean_of(pred, target, [](double d) { return std::fabs(d); });
    case LossType::L2: return mean_of(pred, target, [](double d) { return d * d; });
    case LossType::Huber:
      return mean_of(pred, target, [](double d) {
        const double a = std::fabs(d);
        return a < 1.0 ? 0.5 * d * d : a - 0.5;
      });
  }
  DD_FAIL("loss: invalid LossType value ", static_cast<int>(type));
}

// The scale factors are rounded to float once, in the order PyTorch's
// backward kernels apply them, so the gradients match torch's bit for bit.
Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, float dloss) {
  const int64_t n = pred.numel();
  switch (type) {
    case LossType::L1: {
      // mean's backward (dloss / n) then abs's (times sgn(d), sgn(0) = 0).
      const float g = dloss / static_cast<float>(n);
      return map_diff(pred, target, [g](float d) { return d > 0.0f ? g : (d < 0.0f ? -g : 0.0f * g); });
    }
    case LossType::L2: {
      // mse_loss_backward: (d * (2 / n)) * dloss.
      const float norm = static_cast<float>(2.0 / static_cast<double>(n));
      return map_diff(pred, target, [norm, dloss](float d) { return d * norm * dloss; });
    }
    case LossType::Huber: {
      // smooth_l1_loss_backward with beta = 1: +-norm dloss outside, norm d dloss inside.
      const float norm = static_cast<float>(1.0 / static_cast<double>(n));
      return map_diff(pred, target, [norm, dloss](float d) {
        return d <= -1.0f ? -norm * dloss : (d >= 1.0f ? norm * dloss : norm * d * dloss);
      });
    }
  }
  DD_FAIL("loss_backward: invalid LossType value ", static_cast<int>(type));
}

Tensor loss_backward(const Tensor& pred, const Tensor& target, LossType type, const Tensor& dloss) {
  return cpu::loss_backward(pred, target, type, dloss.data()[0]);
}

Tensor loss_forward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights) {
  switch (type) {
    case LossType::L1: return weighted_mean_of(pred, target, weights, [](double d) { return std::fabs(d); });
    case LossType::L2: return weighted_mean_of(pred, target, weights, [](double d) { return d * d; });
    case LossType::Huber:
      return weighted_mean_of(pred, target, weights, [](double d) {
        const double a = std::fabs(d);
        return a < 1.0 ? 0.5 * d * d : a - 0.5;
      });
  }
  DD_FAIL("weighted loss: invalid LossType value ", static_cast<int>(type));
}

// The unweighted gradient, then times the sample's weight (a float product of its own, as the GPU's).
Tensor loss_backward_weighted(const Tensor& pred, const Tensor& target, LossType type, const Tensor& weights,
                              const Tensor& dloss) {
  Tensor g = cpu::loss_backward(pred, target, type, dloss.data()[0]);
  float* pg = g.data();
  const float* w = weights.data();
  const int64_t n = g.numel(), inner = n / g.dim(0);
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) pg[i] = pg[i] * w[i / inner];
  return g;
}

}  // namespace dd::kernels::cpu

#pragma once
// Naive float64 references for the mean-reduced training losses
// (F.l1_loss, F.mse_loss, F.smooth_l1_loss with beta = 1).
#include <cmath>
#include <vector>

#include "kernels/loss.h"

namespace dd::ref {

inline double loss(const std::vector<double>& pred, const std::vector<double>& target,
                   kernels::LossType type) {
  double sum = 0.0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double d = pred[i] - target[i];
    switch (type) {
      case kernels::LossType::L1: sum += std::fabs(d); break;
      case kernels::LossType::L2: sum += d * d; break;
      case kernels::LossType::Huber: sum += std::fabs(d) < 1.0 ? 0.5 * d * d : std::fabs(d) - 0.5; break;
    }
  }
  return sum / static_cast<double>(pred.size());
}

}  // namespace dd::ref

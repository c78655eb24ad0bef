#pragma once
// The training-loss chart: raw loss drawn faint, an exponential moving average drawn solid, on a
// log-scale y axis when the loss spans more than a decade.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dd::report {

struct LossCurveOptions {
  int width = 960;
  int height = 540;
  std::string title = "training loss";
  // EMA weight of the previous value, in [0, 1). Negative: chosen from the number of points so the
  // average spans about 1/40 of the run (TensorBoard-style, bias-corrected at the start).
  double smoothing = -1.0;
};

// The smoothed series drawn by write_loss_curve (exposed for tests): bias-corrected EMA of values,
// skipping non-finite ones (their output is the EMA so far, NaN before the first finite value).
std::vector<double> ema_smooth(const std::vector<double>& values, double beta);
// The weight write_loss_curve uses for n points when options.smoothing is negative.
double auto_smoothing(size_t n);

// points: (step, loss). Non-finite losses are left out of the chart and counted in its subtitle.
// Throws naming path when there is no finite point or the size is too small for axes and labels.
void write_loss_curve(const std::string& path, const std::vector<std::pair<int64_t, double>>& points,
                      const LossCurveOptions& options = {});

}  // namespace dd::report

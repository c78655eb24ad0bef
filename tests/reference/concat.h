#pragma once
// Naive float64 references for torch.cat / .chunk along the channel dim,
// which is the last dim of our NHWC buffers: every "row" (all leading indices)
// holds each part's channels side by side.
#include <cstdint>
#include <vector>

namespace dd::ref {

// parts[i] has rows * widths[i] values.
inline std::vector<double> concat_last(const std::vector<std::vector<double>>& parts,
                                       const std::vector<int64_t>& widths, int64_t rows) {
  std::vector<double> y;
  for (int64_t r = 0; r < rows; ++r)
    for (std::size_t i = 0; i < parts.size(); ++i)
      for (int64_t c = 0; c < widths[i]; ++c) y.push_back(parts[i][static_cast<std::size_t>(r * widths[i] + c)]);
  return y;
}

inline std::vector<std::vector<double>> chunk_last(const std::vector<double>& x, int64_t rows, int64_t width,
                                                   int64_t n) {
  const int64_t w = width / n;
  std::vector<std::vector<double>> parts(static_cast<std::size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < w; ++c) parts[static_cast<std::size_t>(k)].push_back(x[static_cast<std::size_t>(r * width + k * w + c)]);
  return parts;
}

}  // namespace dd::ref

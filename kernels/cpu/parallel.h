#pragma once
// Deterministic parallel reduction: the chunking is fixed (not tied to the
// thread count or schedule), and partials are combined in order, so a sum is
// bitwise the same on every run. Training resume relies on that.
#include <cstdint>
#include <vector>

namespace dd::kernels::cpu {

template <typename F>
double deterministic_sum(int64_t n, F term, int64_t chunk = 8192) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double s = 0.0;
    for (int64_t i = lo; i < hi; ++i) s += term(i);
    partial[static_cast<std::size_t>(c)] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// sum p[i]^2 in double over kLanes independent accumulators (lane i % kLanes, folded in a fixed
// tree): a single dependent add chain made the grad norm latency-bound, 25 ms a CIFAR-10 step on
// 2 threads (5.7 GB/s, bench_adam --cpu). A float squared is exact in double, so whether the
// compiler contracts it into an FMA changes nothing.
inline double sum_squares_lanes(const float* p, int64_t n) {
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

// The chunk of the sums of squares (sum_squares, sum_squares_multi): both cut a tensor the same
// way and add its chunks' sums in order from 0, so a list's sum is its tensors' sums added.
constexpr int64_t kSquaresChunk = 8192;

}  // namespace dd::kernels::cpu

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

}  // namespace dd::kernels::cpu

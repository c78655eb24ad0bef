#include "apps/data/dataset.h"

#include "engine/error.h"

namespace dd::data {

void Dataset::validate() const {
  DD_CHECK(count > 0 && height > 0 && width > 0 && channels > 0, "dataset '", name, "': empty or negative size ",
           count, "x", height, "x", width, "x", channels);
  DD_CHECK(channels == 1 || channels == 3, "dataset '", name, "': ", channels,
           " channels; only 1 (grayscale) or 3 (RGB) are supported");
  DD_CHECK(static_cast<int64_t>(pixels.size()) == count * image_bytes(), "dataset '", name, "': holds ",
           pixels.size(), " bytes but ", count, "x", height, "x", width, "x", channels, " needs ",
           count * image_bytes());
}

std::string summary(const Dataset& d) {
  return str_cat(d.name, ": ", d.count, "x", d.height, "x", d.width, "x", d.channels);
}

double pixel_mean(const Dataset& d) {
  const int64_t n = static_cast<int64_t>(d.pixels.size());
  if (n == 0) return 0.0;
  // An integer sum is exact, so the OpenMP reduction cannot make the result depend on the thread count.
  uint64_t total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (int64_t i = 0; i < n; ++i) total += d.pixels[static_cast<std::size_t>(i)];
  return static_cast<double>(total) / static_cast<double>(n);
}

}  // namespace dd::data

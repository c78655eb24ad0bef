#pragma once
// Helpers shared by the dd_emu_tests files. Include tests/emu/emu_ops.h first.
#include <string>

#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/support/compare.h"

namespace dd::emu_test {

inline Tensor rnd(test::Random& rng, const Shape& shape, double scale = 1.0) {
  return test::from_double(shape, rng.normal_f32(shape_numel(shape), scale));
}
inline Tensor uni(test::Random& rng, const Shape& shape, double lo, double hi) {
  std::vector<double> v = rng.uniform(shape_numel(shape), lo, hi);
  for (double& x : v) x = static_cast<float>(x);
  return test::from_double(shape, v);
}
// A fresh copy (in-place ops run on both backends from the same start).
inline Tensor copy(const Tensor& t) { return Tensor::from_vector(t.shape(), t.to_vector()); }

}  // namespace dd::emu_test

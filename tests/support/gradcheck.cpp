#include "tests/support/gradcheck.h"

#include <catch2/catch.hpp>

#include "tests/support/compare.h"

namespace dd::test {

namespace {
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
}  // namespace

std::vector<double> numeric_grad(const RefFn& f, std::vector<std::vector<double>> inputs,
                                 const std::vector<double>& dy, std::size_t which, double h) {
  std::vector<double>& x = inputs[which];
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double orig = x[i];
    x[i] = orig + h;
    const double lp = dot(f(inputs), dy);
    x[i] = orig - h;
    const double lm = dot(f(inputs), dy);
    x[i] = orig;
    g[i] = (lp - lm) / (2.0 * h);
  }
  return g;
}

void gradcheck(const std::string& what, const RefFn& f, const std::vector<std::vector<double>>& inputs,
               const std::vector<double>& dy, const std::vector<std::vector<float>>& analytic, double tol,
               double h) {
  REQUIRE(analytic.size() == inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (analytic[i].empty()) continue;
    std::vector<double> num = numeric_grad(f, inputs, dy, i, h);
    // Floor 1e-4: a gradient that is tiny everywhere (e.g. one element deep in
    // GELU's tail) is judged at an absolute 1e-4 * tol, not relative to itself,
    // where float32 rounding of a ~1e-6 value exceeds any sensible tolerance.
    expect_close(what + ": gradient of input " + std::to_string(i), analytic[i], num, tol, 1e-4);
  }
}

}  // namespace dd::test

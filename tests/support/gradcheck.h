#pragma once
// Central finite-difference gradient check in float64.
//
// The float64 reference forward f (tests/reference/) is differentiated
// numerically: for the scalar L = sum_k f(inputs)_k * dy_k,
//   dL/dx_i ~ (L(x_i + h) - L(x_i - h)) / 2h,
// and compared with the analytic gradient the backend's backward produced
// (float32) for the same dy. h = 1e-6 keeps truncation error ~1e-12 and
// rounding error ~1e-10 in double, far below the float32 error being judged.
#include <functional>
#include <string>
#include <vector>

namespace dd::test {

using RefFn = std::function<std::vector<double>(const std::vector<std::vector<double>>&)>;

// Numerical gradient of sum(f(inputs) * dy) with respect to inputs[which].
std::vector<double> numeric_grad(const RefFn& f, std::vector<std::vector<double>> inputs,
                                 const std::vector<double>& dy, std::size_t which, double h = 1e-6);

// Checks analytic[i] against the numerical gradient for every input i whose
// analytic vector is non-empty. tol is relative to the largest numeric element.
void gradcheck(const std::string& what, const RefFn& f, const std::vector<std::vector<double>>& inputs,
               const std::vector<double>& dy, const std::vector<std::vector<float>>& analytic,
               double tol = 1e-4, double h = 1e-6);

}  // namespace dd::test

#pragma once
// Comparison and random-input helpers shared by every test file.
//
// expect_close: the worst |actual - expected| relative to the largest
// |expected| (so tiny elements are judged at the tensor's scale), plus NMSE in
// the message. Any NaN or Inf in actual fails: outputs are NaN-poisoned before
// each run, so an element that no kernel wrote is caught here.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace dd::test {

struct CloseReport {
  bool ok = true;
  double max_rel = 0.0;   // max |a - e| / max(max|e|, floor)
  double nmse = 0.0;      // sum (a-e)^2 / sum e^2
  int64_t worst = -1;
  std::string message;
};

CloseReport compare(const std::vector<float>& actual, const std::vector<double>& expected, double tol,
                    double floor = 1e-6);
CloseReport compare(const std::vector<float>& actual, const std::vector<float>& expected, double tol,
                    double floor = 1e-6);

// A bf16 tensor's bits (the ops' bf16 outputs), on any device; empty for another dtype.
std::vector<uint16_t> bf16_bits(const Tensor& t);

// Catch2 assertion with a useful message.
void expect_close(const std::string& what, const Tensor& actual, const std::vector<double>& expected,
                  double tol);
void expect_close(const std::string& what, const std::vector<float>& actual,
                  const std::vector<double>& expected, double tol, double floor = 1e-6);
// floor: the smallest scale errors are judged at. Pass the size of the terms when the result may
// cancel far below them (a one-element tensor of a*x + b*y, say), where two correct fp32
// evaluations (one fused to an FMA, one not) differ by an ulp of the terms, not of the result.
void expect_close(const std::string& what, const Tensor& actual, const Tensor& expected, double tol,
                  double floor = 1e-6);

// sqrt(sum (a - b)^2 / sum b^2), in double: the distance of a whole tensor (a gradient arena, say)
// from a reference b, relative to b's norm.
double rel_l2(const std::vector<float>& a, const std::vector<float>& b);

std::vector<double> to_double(const Tensor& t);
Tensor from_double(const Shape& shape, const std::vector<double>& v, Device dev = Device::CPU);

// |t| elementwise, on the CPU (undefined stays undefined). An op run on the absolute values of its
// inputs gives the size of the terms its sums add: the floor a result that may cancel is judged at.
Tensor abs_tensor(const Tensor& t);
// The largest element; 0 for an empty or undefined tensor.
double max_element_of(const Tensor& t);

// Seed for this test run: $DD_TEST_SEED if set, else fresh from std::random_device.
// Tests print it (INFO) so a failure can be replayed.
uint64_t test_seed();

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  std::vector<double> normal(int64_t n, double scale = 1.0);
  std::vector<double> uniform(int64_t n, double lo, double hi);
  int uniform_int(int lo, int hi);  // inclusive
  // float32-representable values (so the float and double paths see the same inputs)
  std::vector<double> normal_f32(int64_t n, double scale = 1.0);
  std::mt19937_64& engine() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

}  // namespace dd::test

// Declares a Random named `name` seeded for this run and records the seed in
// the failure message, so any failing case can be replayed exactly.
#define DD_TEST_RANDOM(name)                           \
  ::dd::test::Random name(::dd::test::test_seed());     \
  INFO("replay with DD_TEST_SEED=" << ::dd::test::test_seed())

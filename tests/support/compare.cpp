#include "tests/support/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <catch2/catch.hpp>

#include "engine/error.h"

namespace dd::test {

namespace {
template <typename E>
CloseReport compare_impl(const std::vector<float>& a, const std::vector<E>& e, double tol, double floor) {
  CloseReport r;
  std::ostringstream msg;
  if (a.size() != e.size()) {
    r.ok = false;
    msg << "size mismatch: actual " << a.size() << " vs expected " << e.size();
    r.message = msg.str();
    return r;
  }
  double scale = floor, err_sq = 0.0, ref_sq = 0.0, max_err = 0.0;
  for (E v : e) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  int64_t first_bad = -1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    double av = a[i], ev = static_cast<double>(e[i]);
    if (!std::isfinite(av)) {
      if (first_bad < 0) first_bad = static_cast<int64_t>(i);
      continue;
    }
    double d = std::fabs(av - ev);
    err_sq += d * d;
    ref_sq += ev * ev;
    if (d > max_err) {
      max_err = d;
      r.worst = static_cast<int64_t>(i);
    }
  }
  r.max_rel = max_err / scale;
  r.nmse = ref_sq > 0 ? err_sq / ref_sq : err_sq;
  if (first_bad >= 0) {
    r.ok = false;
    msg << "non-finite value " << a[static_cast<std::size_t>(first_bad)] << " at element " << first_bad
        << " (unwritten or overflowed)";
  } else if (!(r.max_rel <= tol)) {
    r.ok = false;
    msg << "max relative error " << r.max_rel << " > tol " << tol << " at element " << r.worst
        << " (actual " << a[static_cast<std::size_t>(r.worst)] << ", expected "
        << static_cast<double>(e[static_cast<std::size_t>(r.worst)]) << ", scale " << scale
        << "), nmse " << r.nmse;
  } else {
    msg << "max relative error " << r.max_rel << " <= tol " << tol << ", nmse " << r.nmse;
  }
  r.message = msg.str();
  return r;
}
}  // namespace

CloseReport compare(const std::vector<float>& actual, const std::vector<double>& expected, double tol,
                    double floor) {
  return compare_impl(actual, expected, tol, floor);
}
CloseReport compare(const std::vector<float>& actual, const std::vector<float>& expected, double tol,
                    double floor) {
  return compare_impl(actual, expected, tol, floor);
}

void expect_close(const std::string& what, const std::vector<float>& actual,
                  const std::vector<double>& expected, double tol, double floor) {
  CloseReport r = compare(actual, expected, tol, floor);
  INFO(what << ": " << r.message);
  CHECK(r.ok);
}

void expect_close(const std::string& what, const Tensor& actual, const std::vector<double>& expected,
                  double tol) {
  REQUIRE(actual.defined());
  expect_close(what, actual.to_vector(), expected, tol);
}

void expect_close(const std::string& what, const Tensor& actual, const Tensor& expected, double tol, double floor) {
  REQUIRE(actual.defined());
  REQUIRE(expected.defined());
  INFO(what << ": actual " << describe(actual) << ", expected " << describe(expected));
  REQUIRE(actual.shape() == expected.shape());
  CloseReport r = compare(actual.to_vector(), expected.to_vector(), tol, floor);
  INFO(r.message);
  CHECK(r.ok);
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  DD_CHECK(a.size() == b.size(), "rel_l2: sizes differ (", a.size(), " vs ", b.size(), ")");
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

std::vector<double> to_double(const Tensor& t) {
  std::vector<float> f = t.to_vector();
  return std::vector<double>(f.begin(), f.end());
}

Tensor from_double(const Shape& shape, const std::vector<double>& v, Device dev) {
  std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector(shape, f, dev);
}

Tensor abs_tensor(const Tensor& t) {
  if (!t.defined()) return t;
  std::vector<float> v = t.to(Device::CPU).to_vector();
  for (float& e : v) e = std::fabs(e);
  return Tensor::from_vector(t.shape(), v);
}

double max_element_of(const Tensor& t) {
  if (!t.defined() || t.numel() == 0) return 0.0;
  const std::vector<float> v = t.to(Device::CPU).to_vector();
  return *std::max_element(v.begin(), v.end());
}

uint64_t test_seed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("DD_TEST_SEED")) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

std::vector<double> Random::normal(int64_t n, double scale) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(gen_);
  return v;
}

std::vector<double> Random::normal_f32(int64_t n, double scale) {
  std::vector<double> v = normal(n, scale);
  for (auto& x : v) x = static_cast<double>(static_cast<float>(x));
  return v;
}

std::vector<double> Random::uniform(int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<double>(static_cast<float>(d(gen_)));
  return v;
}

int Random::uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }

std::vector<uint16_t> bf16_bits(const Tensor& t) {
  const Tensor c = t.to(Device::CPU);
  if (c.dtype() != DType::BF16) return {};
  const auto* p = static_cast<const uint16_t*>(c.raw_data());
  return std::vector<uint16_t>(p, p + c.numel());
}

}  // namespace dd::test

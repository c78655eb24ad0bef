// Dropout (kernels/dropout.h): the Philox mask against a float64 reference that re-derives it
// from engine/philox.h alone, the keep rate, the 1/(1-p) scale, gradcheck of the masked map,
// and reproducibility for a (seed, offset).
#include <catch2/catch.hpp>

#include <cmath>

#include "autograd/dropout.h"
#include "autograd/elementwise.h"
#include "engine/error.h"
#include "engine/philox.h"
#include "engine/rng.h"
#include "kernels/dropout.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"

using namespace dd;
using namespace dd::test;

namespace {
// float64 reference: element i kept when the 32 bits of Philox block offset + i/4 (counter tagged
// "DROP"), lane i % 4, give (r + 0.5) 2^-32 >= p; kept elements scaled by 1 / (1 - p).
std::vector<double> ref_dropout(const std::vector<double>& x, double p, uint64_t seed, uint64_t offset) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const uint64_t block = offset + i / 4;
    Philox4x32 c{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0x44524f50u, 0u}};
    const Philox4x32 r = philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    const double u = (static_cast<double>(r.v[i % 4]) + 0.5) / 4294967296.0;
    y[i] = u >= p ? x[i] / (1.0 - p) : 0.0;
  }
  return y;
}
}  // namespace

TEST_CASE("dropout matches the float64 reference and keeps about 1 - p", "[dropout]") {
  DD_TEST_RANDOM(rng);
  for (double p : {0.1, 0.5, 0.9})
    for (int64_t n : {1, 3, 4, 5, 1001, 40000}) {
      std::vector<double> x = rng.normal_f32(n);
      for (double& v : x)
        if (v == 0.0) v = 1.0;
      const uint64_t seed = 1234567890123ull, offset = 77;
      Tensor y = kernels::dropout(from_double({n}, x), static_cast<float>(p), seed, offset);
      // One float multiply by the rounded scale vs the exact division: 1 ulp, 1e-6.
      expect_close(str_cat("dropout p ", p, " n ", n), y, ref_dropout(x, p, seed, offset), 1e-6);
      if (n == 40000) {
        int64_t kept = 0;
        for (float v : y.to_vector()) kept += v != 0.0f;
        // Binomial(40000, 1 - p): 5 sigma <= 0.0125 of n.
        CHECK(std::abs(static_cast<double>(kept) / n - (1.0 - p)) < 0.0125);
      }
    }
  Tensor x = from_double({7}, rng.normal_f32(7));
  CHECK(kernels::dropout(x, 0.0f, 1, 0).to_vector() == x.to_vector());
  for (float v : kernels::dropout(x, 1.0f, 1, 0).to_vector()) CHECK(v == 0.0f);
  CHECK_THROWS_WITH(kernels::dropout(x, 1.5f, 1, 0), Catch::Contains("p = 1.5"));
}

TEST_CASE("dropout masks are a function of (seed, offset) only", "[dropout]") {
  Tensor x = Tensor::zeros({1000});
  x.fill_(1.0f);
  const std::vector<float> a = kernels::dropout(x, 0.3f, 5, 10).to_vector();
  CHECK(kernels::dropout(x, 0.3f, 5, 10).to_vector() == a);
  CHECK(kernels::dropout(x, 0.3f, 5, 11).to_vector() != a);
  CHECK(kernels::dropout(x, 0.3f, 6, 10).to_vector() != a);
  // A draw at offset + 1 is the same stream shifted by four elements.
  const std::vector<float> b = kernels::dropout(x, 0.3f, 5, 11).to_vector();
  for (std::size_t i = 0; i + 4 < a.size(); ++i) CHECK(a[i + 4] == b[i]);
}

TEST_CASE("ag::dropout gradcheck: the backward applies the forward's mask", "[dropout][autograd]") {
  DD_TEST_RANDOM(rng);
  const int64_t n = 37;
  const double p = 0.4;
  std::vector<double> x = rng.normal_f32(n), dy = rng.normal_f32(n);
  ag::Var xv(from_double({n}, x), true);
  ag::Var y = ag::dropout(xv, static_cast<float>(p), 99, 3);
  ag::Tape::current().backward(ag::sum(ag::mul(y, ag::Var(from_double({n}, dy)))));
  auto f = [&](const std::vector<std::vector<double>>& v) { return ref_dropout(v[0], p, 99, 3); };
  // A masked scale: the float32 gradient is dy * scale rounded once: 1e-6.
  gradcheck("dropout", f, {x}, dy, {xv.grad().to_vector()}, 1e-6);
  ag::Tape::current().clear();
  ag::Var z(from_double({n}, x), true);
  CHECK(ag::dropout(z, 0.0f, 1, 0).same(z));
}

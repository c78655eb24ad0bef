#include <catch2/catch.hpp>

#include <cmath>

#include "engine/philox.h"
#include "engine/rng.h"
#include "tests/support/compare.h"

using namespace dd;

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[rng]") {
  struct Kat {
    Philox4x32 ctr;
    uint32_t k0, k1;
    Philox4x32 expect;
  };
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, result.
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const Kat& k : kats) {
    Philox4x32 r = philox4x32_10(k.ctr, k.k0, k.k1);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.expect.v[i]);
  }
}

TEST_CASE("randn: one (seed, offset) gives one stream", "[rng]") {
  Tensor a = randn({3, 5, 7}, 42, 10);
  Tensor b = randn({105}, 42, 10);
  CHECK(a.to_vector() == b.to_vector());
  // Offsets count blocks of four normals: offset + 1 is the same stream shifted by 4.
  Tensor c = randn({101}, 42, 11);
  std::vector<float> av = a.to_vector(), cv = c.to_vector();
  for (int i = 0; i < 101; ++i) CHECK(cv[i] == av[i + 4]);
  // A different seed or offset gives a different draw.
  CHECK(randn({16}, 43, 10).to_vector() != randn({16}, 42, 10).to_vector());
  CHECK(randn({16}, 42, 12).to_vector() != randn({16}, 42, 10).to_vector());
}

TEST_CASE("randn: element values follow from philox and Box-Muller", "[rng]") {
  const uint64_t seed = 0x0123456789abcdefULL, offset = 5;
  Tensor t = randn({8}, seed, offset);
  std::vector<float> v = t.to_vector();
  for (int b = 0; b < 2; ++b) {
    Philox4x32 c{{static_cast<uint32_t>(offset + b), 0, 0, 0}};
    Philox4x32 r = philox4x32_10(c, 0x89abcdefu, 0x01234567u);
    for (int p = 0; p < 2; ++p) {
      double u0 = (r.v[2 * p] + 0.5) / 4294967296.0, u1 = (r.v[2 * p + 1] + 0.5) / 4294967296.0;
      double rad = std::sqrt(-2.0 * std::log(u0)), th = 2.0 * M_PI * u1;
      CHECK(v[b * 4 + 2 * p] == static_cast<float>(rad * std::cos(th)));
      CHECK(v[b * 4 + 2 * p + 1] == static_cast<float>(rad * std::sin(th)));
    }
  }
}

TEST_CASE("randn: moments of a large draw are standard normal", "[rng]") {
  const int64_t n = 1 << 20;
  std::vector<float> v = randn({n}, 7, 0).to_vector();
  double s = 0, s2 = 0, s4 = 0;
  int64_t beyond3 = 0;
  for (float x : v) {
    s += x;
    s2 += double(x) * x;
    s4 += double(x) * x * x * x;
    beyond3 += std::fabs(x) > 3.0f;
  }
  double mean = s / n, var = s2 / n - mean * mean;
  // Standard errors at n = 2^20: mean 1e-3, variance 1.4e-3, kurtosis ~5e-3; allow ~5 sigma.
  CHECK(std::fabs(mean) < 5e-3);
  CHECK(std::fabs(var - 1.0) < 7e-3);
  CHECK(std::fabs(s4 / n - 3.0) < 3e-2);
  // P(|z| > 3) = 0.0027.
  CHECK(std::fabs(double(beyond3) / n - 0.0027) < 3e-4);
}

TEST_CASE("Generator hands out disjoint offsets and restores its state", "[rng]") {
  Generator g(99);
  Tensor a = g.randn({10});  // 3 blocks
  CHECK(g.offset() == 3);
  Tensor b = g.randn({4});
  CHECK(b.to_vector() == randn({4}, 99, 3).to_vector());
  Generator h(0);
  h.set_state(g.seed(), g.offset());
  CHECK(h.randn({6}).to_vector() == g.randn({6}).to_vector());
  for (int i = 0; i < 1000; ++i) {
    uint64_t k = g.uniform_int(7);
    REQUIRE(k < 7);
    double u = g.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
  REQUIRE_THROWS_WITH(g.uniform_int(0), Catch::Contains("uniform_int"));
}

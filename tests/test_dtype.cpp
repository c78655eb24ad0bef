// Casts between the tensor dtypes (engine/dtype.h) against a float64 reference written
// from the IEEE definitions, and the dtype checks of Tensor.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/elementwise.h"
#include "tests/support/compare.h"
#include "tests/support/dtype_samples.h"

using namespace dd;
using namespace dd::test;
using Catch::Contains;

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Round x (finite, exact in double) to the nearest point of a binary format with p
// significand bits (implicit one included), minimum normal exponent emin and largest
// finite value max, ties to even; beyond max by half an ulp or more is Inf (IEEE 754
// rounds as if the exponent range were unbounded).
double ref_round(double x, int p, int emin, double max) {
  if (x == 0) return x;
  const double a = std::fabs(x);
  int e = std::ilogb(a);
  if (e < emin) e = emin;  // subnormals share the smallest exponent's spacing
  const double ulp = std::ldexp(1.0, e - (p - 1));
  const double q = a / ulp;  // exact: a power-of-two scaling
  double r = std::floor(q);
  const double frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1;
  double out = r * ulp;
  const double max_ulp = std::ldexp(1.0, std::ilogb(max) - (p - 1));
  if (out > max || a >= max + max_ulp / 2) out = std::numeric_limits<double>::infinity();
  return std::copysign(out, x);
}
double ref_bf16(float f) { return ref_round(f, 8, -126, 3.3895313892515355e38); }
double ref_f16(float f) { return ref_round(f, 11, -14, 65504.0); }

// Decodes the 16-bit formats from their fields, in double.
double ref_decode(uint16_t h, int mant_bits, int bias) {
  const int exp_mask = (1 << (15 - mant_bits)) - 1;
  const int e = (h >> mant_bits) & exp_mask;
  const int m = h & ((1 << mant_bits) - 1);
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == exp_mask) return m ? std::numeric_limits<double>::quiet_NaN() : sign * HUGE_VAL;
  if (e == 0) return sign * std::ldexp(m, 1 - bias - mant_bits);
  return sign * std::ldexp(1.0 + std::ldexp(m, -mant_bits), e - bias);
}

// Checks a rounded 16-bit result against the reference value for input f.
void check_rounding(const char* what, float f, uint16_t got, float got_value, double want) {
  INFO(what << " of " << std::hexfloat << f << " (bits 0x" << std::hex << to_bits(f) << ") gave 0x" << got);
  if (std::isnan(f)) {
    CHECK(std::isnan(got_value));
    CHECK(std::signbit(got_value) == std::signbit(f));
    return;
  }
  CHECK(static_cast<double>(got_value) == want);
  CHECK(std::signbit(got_value) == std::signbit(want));
}

}  // namespace

TEST_CASE("dtype: 16-bit decoders are exact for every bit pattern", "[dtype]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    INFO("0x" << std::hex << h);
    const double b = ref_decode(static_cast<uint16_t>(h), 7, 127), f = ref_decode(static_cast<uint16_t>(h), 10, 15);
    const float gb = dtype_conv::bf16_to_f32(static_cast<uint16_t>(h)), gf = dtype_conv::f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(b)) {
      REQUIRE(std::isnan(gb));
    } else {
      REQUIRE(static_cast<double>(gb) == b);
      REQUIRE(std::signbit(gb) == std::signbit(b));
      // Round trip: every representable value converts back to itself.
      REQUIRE(dtype_conv::f32_to_bf16(gb) == h);
    }
    if (std::isnan(f)) {
      REQUIRE(std::isnan(gf));
    } else {
      REQUIRE(static_cast<double>(gf) == f);
      REQUIRE(std::signbit(gf) == std::signbit(f));
      REQUIRE(dtype_conv::f32_to_f16(gf) == h);
    }
  }
}

TEST_CASE("dtype: float32 -> bf16 / f16 round to nearest even, against float64", "[dtype]") {
  DD_TEST_RANDOM(rng);
  std::vector<uint32_t> inputs = special_f32_bits();
  // Exact ties and their neighbours: for bf16 the dropped 16 bits are 0x8000 (+-1); for f16
  // (normal range) the dropped 13 bits are 0x1000 (+-1); both with even and odd kept parts.
  for (uint32_t kept : {0x3f80u, 0x3f81u, 0x4049u, 0x0001u, 0x7f7eu, 0x7f7fu, 0xc2f7u})
    for (uint32_t low : {0x7fffu, 0x8000u, 0x8001u}) inputs.push_back((kept << 16) | low);
  for (uint32_t kept : {0x3f800u, 0x3f801u, 0x477feu, 0x38800u, 0xc1234u})
    for (uint32_t low : {0xfffu, 0x1000u, 0x1001u}) inputs.push_back((kept << 13) | low);
  // Halfway between f16 subnormals k and k+1 (units of 2^-24), for even and odd k.
  for (int k : {0, 1, 2, 3, 1022, 1023})
    inputs.push_back(to_bits(static_cast<float>(std::ldexp(k + 0.5, -24))));
  for (int i = 0; i < 200000; ++i) inputs.push_back(static_cast<uint32_t>(rng.engine()()));
  // And random values in f16's range, where random bits rarely land.
  for (int i = 0; i < 100000; ++i)
    inputs.push_back(to_bits(static_cast<float>(std::ldexp(rng.uniform(1, -1.0, 1.0)[0], rng.uniform_int(-26, 17)))));
  for (uint32_t u : inputs) {
    const float f = from_bits(u);
    const uint16_t b = dtype_conv::f32_to_bf16(f), h = dtype_conv::f32_to_f16(f);
    check_rounding("bf16", f, b, dtype_conv::bf16_to_f32(b), std::isnan(f) ? 0.0 : ref_bf16(f));
    check_rounding("f16", f, h, dtype_conv::f16_to_f32(h), std::isnan(f) ? 0.0 : ref_f16(f));
    if (std::isnan(f)) {  // quiet: the top mantissa bit is set
      CHECK((b & 0x0040) != 0);
      CHECK((h & 0x0200) != 0);
    }
  }
  // Named cases, so a failure reads plainly.
  CHECK(dtype_conv::f32_to_bf16(from_bits(0x3f808000u)) == 0x3f80);  // tie, even below: down
  CHECK(dtype_conv::f32_to_bf16(from_bits(0x3f818000u)) == 0x3f82);  // tie, odd below: up
  CHECK(dtype_conv::f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // overflow -> Inf
  CHECK(dtype_conv::f32_to_bf16(-0.0f) == 0x8000);
  CHECK(dtype_conv::f32_to_f16(65520.0f) == 0x7c00);   // tie at the top: to Inf (even)
  CHECK(dtype_conv::f32_to_f16(65519.996f) == 0x7bff);  // just below: 65504
  CHECK(dtype_conv::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 2^-24: 0
  CHECK(dtype_conv::f32_to_f16(std::ldexp(1.5f, -24)) == 0x0002);  // tie 1|2: 2
  CHECK(dtype_conv::f32_to_f16(std::ldexp(2.5f, -24)) == 0x0002);  // tie 2|3: 2
  CHECK(dtype_conv::f32_to_f16(-1e-10f) == 0x8000);  // underflow keeps the sign
  CHECK(dtype_conv::f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
}

TEST_CASE("dtype: integer casts truncate toward zero and saturate", "[dtype]") {
  using dtype_conv::cast;
  CHECK(cast<int32_t>(2.7f) == 2);
  CHECK(cast<int32_t>(-2.7f) == -2);
  CHECK(cast<int32_t>(-0.5f) == 0);
  CHECK(cast<int64_t>(-1e10f) == -10000000000);
  // PyTorch leaves these undefined; we pin them so the CPU and the GPU agree.
  CHECK(cast<int32_t>(std::numeric_limits<float>::quiet_NaN()) == 0);
  CHECK(cast<int32_t>(3e9f) == std::numeric_limits<int32_t>::max());
  CHECK(cast<int32_t>(-3e9f) == std::numeric_limits<int32_t>::min());
  CHECK(cast<int64_t>(std::numeric_limits<float>::infinity()) == std::numeric_limits<int64_t>::max());
  CHECK(cast<int64_t>(-1e30f) == std::numeric_limits<int64_t>::min());
  CHECK(cast<int32_t>(bf16{0x4020}) == 2);   // 2.5
  CHECK(cast<int64_t>(f16{0xc500}) == -5);   // -5
  // Ints to float round to nearest even; int64 -> int32 wraps; int -> bf16 goes through float.
  CHECK(cast<float>(int32_t{16777217}) == 16777216.0f);
  CHECK(cast<float>(int32_t{16777219}) == 16777220.0f);
  CHECK(cast<float>(int64_t{-(int64_t(1) << 40)}) == -1099511627776.0f);
  CHECK(cast<int32_t>(int64_t{(int64_t(1) << 32) + 5}) == 5);
  CHECK(cast<int32_t>(int64_t{-7}) == -7);
  CHECK(cast<int64_t>(int32_t{-7}) == -7);
  CHECK(cast<bf16>(int32_t{257}).bits == 0x4380);  // 257 -> 256 (tie to even)
  CHECK(cast<f16>(int64_t{70000}).bits == 0x7c00);  // overflow
}

TEST_CASE("dtype: Tensor::to(DType) casts every pair like the element functions", "[dtype][tensor]") {
  DD_TEST_RANDOM(rng);
  const int64_t n = 1001;
  for (DType from : all_dtypes()) {
    const std::vector<uint8_t> src = dtype_samples(from, n, rng.engine()());
    const Tensor t = Tensor::from_raw({7, 11, 13}, from, src.data());
    CHECK(t.dtype() == from);
    CHECK(t.to_bytes() == src);
    for (DType to : all_dtypes()) {
      INFO(dtype_name(from) << " -> " << dtype_name(to));
      const Tensor c = t.to(to);
      REQUIRE(c.dtype() == to);
      CHECK(c.shape() == t.shape());
      std::vector<uint8_t> want(n * dtype_size(to));
      cast_host(src.data(), from, want.data(), to, n);
      CHECK(c.to_bytes() == want);
      if (from == to) CHECK(c.same_storage(t));  // like PyTorch: no copy
    }
  }
  // Values representable in the narrower type survive a round trip exactly.
  const std::vector<float> exact{0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, std::ldexp(1.0f, -24), 0.333251953125f};
  CHECK(Tensor::from_vector({7}, exact, Device::CPU, DType::F16).to(DType::F32).to_vector() == exact);
  const std::vector<float> bexact{0.0f, 1.0f, -2.5f, 3.140625f, std::ldexp(1.0f, -133), 3.3895313892515355e38f};
  CHECK(Tensor::from_vector({6}, bexact, Device::CPU, DType::BF16).to(DType::F32).to_vector() == bexact);
}

TEST_CASE("dtype: data<T>() and the float32 kernels check the dtype", "[dtype][tensor]") {
  Tensor b = Tensor::full({2, 3}, 2.5f, Device::CPU, DType::BF16);
  CHECK(b.data<bf16>()[5].bits == 0x4020);
  CHECK(b.element_size() == 2);
  CHECK(b.nbytes() == 12);
  REQUIRE_THROWS_WITH(b.data(), Contains("expected a float32") && Contains("bfloat16") && Contains("[2,3]"));
  REQUIRE_THROWS_WITH(b.data<int32_t>(), Contains("expected a int32") && Contains("bfloat16"));
  REQUIRE_THROWS_WITH(Tensor::zeros({2}).data<f16>(), Contains("float16") && Contains("float32"));
  // An op handed a bf16 tensor refuses it instead of reading its bytes as floats.
  REQUIRE_THROWS_AS(kernels::add(b, b), Error);
  CHECK(describe(b) == "[2,3] cpu bfloat16");
  CHECK(describe(Tensor::zeros({2})) == "[2] cpu");
  // Reading back converts; the ints hold truncated values.
  CHECK(b.to_vector() == std::vector<float>(6, 2.5f));
  CHECK(Tensor::full({2}, -2.7f, Device::CPU, DType::I32).to_vector() == std::vector<float>{-2.0f, -2.0f});
  CHECK(Tensor::full({1}, 3.9f, Device::CPU, DType::I64).data<int64_t>()[0] == 3);
  CHECK(Tensor::full({1}, -1.0f, Device::CPU, DType::F16).item() == -1.0f);
  Tensor z = Tensor::zeros({3}, Device::CPU, DType::I64);
  CHECK(z.to_bytes() == std::vector<uint8_t>(24, 0));
  // Poisoned new tensors: NaN for the 16-bit floats, all ones (-1) for the ints.
  for (float v : Tensor::empty({4}, Device::CPU, DType::F16).to_vector()) CHECK(std::isnan(v));
  for (float v : Tensor::empty({4}, Device::CPU, DType::BF16).to_vector()) CHECK(std::isnan(v));
  CHECK(Tensor::empty({2}, Device::CPU, DType::I32).to_vector() == std::vector<float>{-1.0f, -1.0f});
  // copy_from casts between dtypes (as torch's copy_ does).
  Tensor dst = Tensor::empty({3}, Device::CPU, DType::F16);
  dst.copy_from(Tensor::from_vector({3}, {1.0f, 0.1f, 1e6f}));
  CHECK(dst.data<f16>()[1].bits == 0x2e66);
  CHECK(dst.data<f16>()[2].bits == 0x7c00);
  CHECK(std::string(dtype_name(DType::I64)) == "int64");
}

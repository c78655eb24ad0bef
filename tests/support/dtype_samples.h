#pragma once
// Inputs for the dtype cast tests (CPU, emulator, GPU): random bit patterns of a
// dtype with its special values mixed in (zeros of both signs, Inf, NaNs with
// payloads, the largest values, subnormals, rounding ties, integer extremes), so
// every branch of the conversions in engine/dtype.h is exercised.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/dtype.h"

namespace dd::test {

inline std::vector<uint32_t> special_f32_bits() {
  return {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,  // +-0, +-Inf
          0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u,  // quiet and signalling NaNs, payloads
          0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u, 0x7f7f7fffu,  // FLT_MAX (bf16 overflow), bf16 max-ish ties
          0x00800000u, 0x00000001u, 0x807fffffu, 0x00008000u,  // min normal, subnormals
          0x477fe000u, 0x477ff000u, 0x477fefffu, 0xc77ff000u,  // 65504, 65520 (f16 overflow tie), below it
          0x38800000u, 0x387fe000u, 0x33000000u, 0x33000001u,  // f16 min normal, subnormal, 2^-25 tie, above
          0x33c00000u, 0x34200000u, 0x3f808000u, 0x3f818000u,  // 1.5 and 2.5 x 2^-24; bf16 ties (even/odd)
          0x3f801000u, 0x3f803000u, 0x4effffffu, 0xdf000000u,  // f16 ties; near 2^31; -2^63
          0x4f000000u, 0x5f000000u, 0xcf000001u, 0x3f7fffffu}; // 2^31, 2^63, below -2^31, just under 1
}

// n elements of dtype t: the special values first (for floats), then random bits.
inline std::vector<uint8_t> dtype_samples(DType t, int64_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  const std::size_t size = dtype_size(t);
  std::vector<uint8_t> out(static_cast<std::size_t>(n) * size);
  std::vector<uint64_t> special;
  if (t == DType::F32)
    for (uint32_t b : special_f32_bits()) special.push_back(b);
  if (t == DType::BF16)
    for (uint32_t b : special_f32_bits()) special.push_back(b >> 16);
  if (t == DType::F16)
    special = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe55, 0x7bff, 0xfbff, 0x0001, 0x03ff, 0x0400, 0x3c00};
  if (t == DType::I32)
    special = {0, 1, uint64_t(-1), 0x7fffffffu, 0x80000000u, 16777217, 16777219, uint64_t(-16777217)};
  if (t == DType::I64)
    special = {0, uint64_t(-1), 0x7fffffffffffffffull, 0x8000000000000000ull, (1ull << 32) + 5, 16777217,
               (1ull << 53) + 1, uint64_t(-(int64_t(1) << 40) - 3)};
  for (int64_t i = 0; i < n; ++i) {
    uint64_t bits = gen();
    if (static_cast<std::size_t>(i) < special.size()) bits = special[static_cast<std::size_t>(i)];
    // Keep ints mostly in float range, so the casts back are not all saturation.
    if ((t == DType::I32 || t == DType::I64) && i >= static_cast<int64_t>(special.size()) && (i % 2))
      bits = static_cast<uint64_t>(static_cast<int64_t>(gen() % 2000001) - 1000000);
    std::memcpy(out.data() + static_cast<std::size_t>(i) * size, &bits, size);  // little-endian: low bytes
  }
  return out;
}

inline const std::vector<DType>& all_dtypes() {
  static const std::vector<DType> v{DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64};
  return v;
}

}  // namespace dd::test

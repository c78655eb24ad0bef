#pragma once
// Element types of a Tensor and the conversions between them.
//
// The conversions are written once, for host and device (engine/cuda/cast.cu runs
// the same functions), so a cast gives the same bits on the CPU and the GPU. They
// work on the integer bit patterns rather than on the hardware's conversion
// instructions, whose NaN handling differs between x86 and CUDA.
//
// Rules (the same as PyTorch where PyTorch defines them):
// - float32 -> bfloat16 / float16: round to nearest, ties to even; overflow gives
//   +-Inf (IEEE); Inf stays Inf; NaN stays NaN with its sign and top payload bits,
//   quiet bit set (PyTorch writes a canonical 0x7FC0 for bf16; either is a NaN).
// - bfloat16 / float16 -> float32: exact.
// - A cast to the same dtype copies the bits.
// - bf16 <-> f16 go through float32, which is exact for the first step, so the
//   result is rounded once.
// - float -> int32 / int64: truncation toward zero, like PyTorch's .to(int). PyTorch
//   leaves NaN and out-of-range values undefined (x86 gives INT_MIN); here NaN gives
//   0 and out-of-range values saturate, so the CPU and the GPU agree.
// - int -> float32: round to nearest even. int -> bf16 / f16 goes through float32
//   (as PyTorch does), which can round twice for |x| > 2^24.
// - int64 -> int32 wraps modulo 2^32, like PyTorch.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "engine/host_device.h"

namespace dd {

enum class DType : uint8_t { F32, BF16, F16, I32, I64 };

// PyTorch's names: "float32", "bfloat16", "float16", "int32", "int64".
const char* dtype_name(DType t);
DD_HOST_DEVICE constexpr std::size_t dtype_size(DType t) {
  return t == DType::I64 ? 8 : (t == DType::BF16 || t == DType::F16) ? 2 : 4;
}
// False for a value outside the enum (a corrupted or cast integer).
constexpr bool dtype_valid(DType t) { return static_cast<uint8_t>(t) <= static_cast<uint8_t>(DType::I64); }
// The safetensors names ("F32", "BF16", "F16", "I32", "I64") and back; the reverse
// returns false for a name that is not one of these five.
const char* dtype_safetensors_name(DType t);
bool dtype_from_safetensors(std::string_view name, DType& out);

// Storage types of the 16-bit floats: the raw bits, distinct types so that
// data<bf16>() and data<f16>() cannot be confused.
struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

// The C++ type a dtype is stored as, and back (data<T>() checks T against the dtype).
template <typename T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<bf16> {
  static constexpr DType value = DType::BF16;
};
template <>
struct dtype_of<f16> {
  static constexpr DType value = DType::F16;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::I32;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::I64;
};

namespace dtype_conv {

DD_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

DD_HOST_DEVICE inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

DD_HOST_DEVICE inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  // Adding 0x7fff plus the lowest kept bit rounds halfway cases to the even neighbour;
  // a carry out of the mantissa bumps the exponent, and past the largest finite value
  // it lands exactly on Inf (0x7f80), which is IEEE overflow.
  const uint32_t lsb = (u >> 16) & 1u;
  return static_cast<uint16_t>((u + 0x7fffu + lsb) >> 16);
}

DD_HOST_DEVICE inline float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// float32 -> tf32 (10 explicit mantissa bits) as cvt.rna.tf32.f32 rounds: nearest, ties away from
// zero, kept in a float32 whose low 13 bits are zero. NaN stays NaN, Inf stays Inf; a finite value
// past tf32's largest rounds to Inf. The CPU's reading of the TF32 policy and the emulator use it.
DD_HOST_DEVICE inline float round_tf32(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7f800000u) == 0x7f800000u) return (u & 0x7fffffu) ? bits_float(u | 0x400000u) : f;
  return bits_float((u + 0x1000u) & 0xffffe000u);
}
// float32 -> the nearest bf16 (ties to even), kept in a float32.
DD_HOST_DEVICE inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

DD_HOST_DEVICE inline uint16_t f32_to_f16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // quiet NaN
  // 65520 lies halfway between 65504 (the largest half, odd mantissa) and 2^16: it and
  // everything above round to Inf.
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a >= 0x38800000u) {  // a normal half (>= 2^-14): rebias the exponent 127 -> 15
    uint32_t r = a - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);  // round to nearest even on the 13 dropped bits
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  // A half subnormal: the value in units of 2^-24 is m * 2^(e - 126) for the float's
  // biased exponent e and its 24-bit significand m; below 2^-25 it rounds to zero.
  const uint32_t e = a >> 23;
  if (e < 102) return sign;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - e;  // 14 .. 24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: still right
  return static_cast<uint16_t>(sign | q);
}

DD_HOST_DEVICE inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));  // Inf, NaN (payload kept)
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

DD_HOST_DEVICE inline int32_t f32_to_i32(float f) {
  if (f != f) return 0;
  if (f >= 2147483648.0f) return INT32_MAX;
  if (f <= -2147483648.0f) return INT32_MIN;
  return static_cast<int32_t>(f);  // truncates toward zero
}

DD_HOST_DEVICE inline int64_t f32_to_i64(float f) {
  if (f != f) return 0;
  if (f >= 9223372036854775808.0f) return INT64_MAX;
  if (f <= -9223372036854775808.0f) return INT64_MIN;
  return static_cast<int64_t>(f);
}

// Any stored element to float32 (ints round to nearest even).
DD_HOST_DEVICE inline float to_f32(float v) { return v; }
DD_HOST_DEVICE inline float to_f32(bf16 v) { return bf16_to_f32(v.bits); }
DD_HOST_DEVICE inline float to_f32(f16 v) { return f16_to_f32(v.bits); }
DD_HOST_DEVICE inline float to_f32(int32_t v) { return static_cast<float>(v); }
DD_HOST_DEVICE inline float to_f32(int64_t v) { return static_cast<float>(v); }

// The cast of one element, From -> To, by the rules at the top of this file.
template <typename To, typename From>
DD_HOST_DEVICE inline To cast(From v) {
  constexpr bool from_int = dtype_of<From>::value == DType::I32 || dtype_of<From>::value == DType::I64;
  constexpr DType to = dtype_of<To>::value;
  if constexpr (std::is_same_v<To, From>) {
    return v;  // bit for bit, signalling NaNs included
  } else if constexpr (from_int && (to == DType::I32 || to == DType::I64)) {
    return static_cast<To>(v);  // int64 -> int32 wraps (two's complement)
  } else {
    const float f = to_f32(v);
    if constexpr (to == DType::F32)
      return f;
    else if constexpr (to == DType::BF16)
      return bf16{f32_to_bf16(f)};
    else if constexpr (to == DType::F16)
      return f16{f32_to_f16(f)};
    else if constexpr (to == DType::I32)
      return f32_to_i32(f);
    else
      return f32_to_i64(f);
  }
}

}  // namespace dtype_conv

// Calls f with a value of dtype t's storage type (f(float{}), f(bf16{}), ...), so code written once
// as a generic lambda runs for every dtype: the casts' two-level dispatch on host and device.
template <typename F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::F32: return f(float{});
    case DType::BF16: return f(bf16{});
    case DType::F16: return f(f16{});
    case DType::I32: return f(int32_t{});
    case DType::I64: return f(int64_t{});
  }
  return f(float{});  // unreachable for a valid DType; callers check the value first
}

// Host cast of n elements (src and dst must not overlap unless they are equal and
// the dtypes match).
void cast_host(const void* src, DType from, void* dst, DType to, int64_t n);

}  // namespace dd

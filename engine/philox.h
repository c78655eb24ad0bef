#pragma once
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3")
// and Box-Muller, written once for host and device so a seed gives the same
// Gaussian stream on the CPU and the GPU.
//
// Stream definition: normal number i of a draw at (seed, offset) comes from
// block b = offset + i / 4, counter {lo(b), hi(b), 0, 0}, key {lo(seed), hi(seed)},
// lane i % 4. Lanes (0,1) and (2,3) are Box-Muller pairs (cos, sin).
// Box-Muller runs in double and rounds once to float: CPU libm and CUDA's
// double-precision functions are both within an ulp or two of the exact value
// in double, so the float results agree (a mismatch needs a double that sits
// within ~1e-16 of a float rounding boundary).
#include <cmath>
#include <cstdint>

#include "engine/host_device.h"

namespace dd {

// Where a draw starts in its stream: `value` blocks after *base when base is set, else at value.
// base points into device memory (host memory on the CPU) that the host rewrites before each replay
// of a captured CUDA graph (cuda_mem::write_small), so a replayed draw moves on with the run
// instead of repeating the captured offset. Built implicitly from a plain offset.
struct PhiloxOffset {
  uint64_t value = 0;
  const uint64_t* base = nullptr;
  DD_HOST_DEVICE PhiloxOffset() {}
  DD_HOST_DEVICE PhiloxOffset(uint64_t v) : value(v) {}  // NOLINT: implicit, as a plain offset
  DD_HOST_DEVICE PhiloxOffset(uint64_t v, const uint64_t* b) : value(v), base(b) {}
  DD_HOST_DEVICE uint64_t get() const { return base ? *base + value : value; }
};

struct Philox4x32 {
  uint32_t v[4];
};

DD_HOST_DEVICE inline void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

DD_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 ctr, uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, ctr.v[0], hi0, lo0);
    philox_mulhilo(M1, ctr.v[2], hi1, lo1);
    Philox4x32 next;
    next.v[0] = hi1 ^ ctr.v[1] ^ k0;
    next.v[1] = lo1;
    next.v[2] = hi0 ^ ctr.v[3] ^ k1;
    next.v[3] = lo0;
    ctr = next;
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// Uniform in (0, 1): never 0, so log() below is finite.
DD_HOST_DEVICE inline double philox_uniform(uint32_t x) { return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10; }

// Four standard normals for block b of the stream (seed).
DD_HOST_DEVICE inline void philox_normal4(uint64_t seed, uint64_t block, float out[4]) {
  Philox4x32 c;
  c.v[0] = static_cast<uint32_t>(block);
  c.v[1] = static_cast<uint32_t>(block >> 32);
  c.v[2] = 0;
  c.v[3] = 0;
  Philox4x32 r = philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const double two_pi = 6.283185307179586476925286766559;
  for (int p = 0; p < 2; ++p) {
    double u0 = philox_uniform(r.v[2 * p]);
    double u1 = philox_uniform(r.v[2 * p + 1]);
    double radius = sqrt(-2.0 * log(u0));
    double theta = two_pi * u1;
    out[2 * p] = static_cast<float>(radius * cos(theta));
    out[2 * p + 1] = static_cast<float>(radius * sin(theta));
  }
}

// Uniform floats in [0, 1) from the same counter scheme (used for timesteps and flips).
DD_HOST_DEVICE inline uint32_t philox_u32(uint64_t seed, uint64_t block, int lane) {
  Philox4x32 c;
  c.v[0] = static_cast<uint32_t>(block);
  c.v[1] = static_cast<uint32_t>(block >> 32);
  c.v[2] = 0;
  c.v[3] = 0;
  return philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)).v[lane & 3];
}

// A uniform integer in [0, n) from one block: 64 random bits (lanes 0 and 1) modulo n; the bias is
// below 2^-40 for n < 2^24. Generator::uniform_int and the device's timestep draw both use this.
DD_HOST_DEVICE inline uint64_t philox_uniform_int(uint64_t seed, uint64_t block, uint64_t n) {
  const uint64_t x = (static_cast<uint64_t>(philox_u32(seed, block, 0)) << 32) | philox_u32(seed, block, 1);
  return x % n;
}

}  // namespace dd

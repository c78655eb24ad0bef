#pragma once
// The dropout mask, written once for host and device (kernels/cpu/dropout.cpp,
// kernels/cuda/dropout.cu) so a (seed, offset) drops the same elements on the CPU and the GPU.
//
// Element i of a draw at (seed, offset) uses Philox block b = offset + i / 4, counter
// {lo(b), hi(b), kDropoutTag, 0}, key {lo(seed), hi(seed)}, lane i % 4: with the lane's 32 bits r,
// u = (r + 0.5) 2^-32 (engine/philox.h's philox_uniform) and the element is kept when u >= p.
// A draw of n elements uses philox_blocks(n) blocks, as a draw of n normals (Generator::reserve).
// The counter's third word tags the stream, so a dropout draw never repeats a normal draw's bits
// even at the same offset.
#include <cstdint>

#include "engine/host_device.h"
#include "engine/philox.h"

namespace dd::kernels {

constexpr uint32_t kDropoutTag = 0x44524f50u;  // "DROP"

// The kept-element scale 1 / (1 - p) as float (torch's Dropout: x * (1 / (1 - p))); 0 for p = 1.
DD_HOST_DEVICE inline float dropout_scale(float p) {
  return p >= 1.0f ? 0.0f : static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
}

// keep[j] for the four elements 4 * (block - offset) + j of the draw.
DD_HOST_DEVICE inline void dropout_keep4(uint64_t seed, uint64_t block, float p, bool keep[4]) {
  Philox4x32 c;
  c.v[0] = static_cast<uint32_t>(block);
  c.v[1] = static_cast<uint32_t>(block >> 32);
  c.v[2] = kDropoutTag;
  c.v[3] = 0;
  const Philox4x32 r = philox4x32_10(c, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  for (int j = 0; j < 4; ++j) keep[j] = philox_uniform(r.v[j]) >= static_cast<double>(p);
}

}  // namespace dd::kernels

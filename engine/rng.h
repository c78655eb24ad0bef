#pragma once
// Counter-based random numbers: a (seed, offset) pair fully determines a draw,
// on any device. A Generator hands out disjoint offsets, and its state is two
// integers, so a training run can save and restore it exactly.
#include <cstdint>

#include "engine/philox.h"
#include "engine/tensor.h"

namespace dd {

// Standard normal tensor: element i is normal number i of the stream at (seed, offset).
Tensor randn(const Shape& shape, uint64_t seed, PhiloxOffset offset, Device dev = Device::CPU);
// Writes the same stream into an existing tensor (CPU or CUDA).
void randn_fill(Tensor& out, uint64_t seed, PhiloxOffset offset);

// Number of Philox blocks a draw of n normals consumes.
inline uint64_t philox_blocks(int64_t n) { return static_cast<uint64_t>((n + 3) / 4); }

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves blocks for n normals and returns the offset to draw them at.
  uint64_t reserve(int64_t n) {
    uint64_t o = offset_;
    offset_ += philox_blocks(n);
    return o;
  }
  Tensor randn(const Shape& shape, Device dev = Device::CPU) {
    return dd::randn(shape, seed_, reserve(shape_numel(shape)), dev);
  }
  // randn at reserve_at's offset (relative to the anchor while anchored: a captured graph's draw).
  Tensor randn_at(const Shape& shape, Device dev = Device::CPU) {
    return dd::randn(shape, seed_, reserve_at(shape_numel(shape)), dev);
  }
  // A uniform integer in [0, n) (n > 0); uses one block.
  uint64_t uniform_int(uint64_t n);
  // Reserves `blocks` blocks (e.g. one per uniform_int drawn elsewhere, on a device) and returns the
  // offset of the first.
  uint64_t skip(uint64_t blocks) {
    uint64_t o = offset_;
    offset_ += blocks;
    return o;
  }
  // A uniform double in [0, 1); uses one block.
  double uniform();

  // For CUDA graphs: while anchored, reserve_at/skip_at hand out offsets relative to *base (a
  // device counter holding offset() as of anchor(): value = the offset minus that), so a captured
  // draw reads where the run is at each replay; the replayer writes offset() to *base before it.
  // Unanchored they are reserve/skip as plain offsets. The host counter advances the same either way.
  void anchor(const uint64_t* base) {
    anchor_base_ = base;
    anchor_at_ = offset_;
  }
  void unanchor() {
    anchor_base_ = nullptr;
    anchor_at_ = 0;
  }
  PhiloxOffset reserve_at(int64_t n) { return at(reserve(n)); }
  PhiloxOffset skip_at(uint64_t blocks) { return at(skip(blocks)); }

 private:
  PhiloxOffset at(uint64_t o) const { return anchor_base_ ? PhiloxOffset(o - anchor_at_, anchor_base_) : PhiloxOffset(o); }

  uint64_t seed_;
  uint64_t offset_;
  const uint64_t* anchor_base_ = nullptr;
  uint64_t anchor_at_ = 0;
};

namespace cuda_rng {
void randn_fill(float* out, int64_t n, uint64_t seed, PhiloxOffset offset);
}

}  // namespace dd

#pragma once
// The step's losses, kept where they were computed and read back in batches. Reading a GPU loss
// every step waits for the whole step to finish, so the host could not queue the next one while the
// GPU works; the trainer pushes each step's loss here (a 4-byte device-to-device copy) and drains the
// ring when it needs the values: at logging, checkpoint and sample steps, and at the end. The
// divergence guard checks every drained loss, so no checkpoint is written after a non-finite one.
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace dd::ddpm {

class LossRing {
 public:
  LossRing(Device dev, int64_t capacity);
  // Appends loss[0] (a one-element tensor on the ring's device); the ring must not be full.
  void push(const Tensor& loss);
  bool full() const { return count_ == capacity_; }
  int64_t pending() const { return count_; }
  // Every loss pushed since the last drain, oldest first (one device-to-host copy); empties the ring.
  std::vector<float> drain();

 private:
  Tensor buf_;
  int64_t capacity_;
  int64_t count_ = 0;
};

}  // namespace dd::ddpm

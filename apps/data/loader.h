#pragma once
// Batches for training: a fresh shuffle every epoch and optional random
// horizontal flips, both pure functions of (seed, epoch, position), so a run
// resumed from a saved LoaderState sees bitwise the same batches.
//
// Epoch boundary: an epoch yields floor(N / batch_size) full batches; the last
// N mod batch_size images of its order are skipped (like PyTorch's drop_last),
// and the next batch is the first of the next epoch's new order. Every batch
// therefore has exactly batch_size images from one epoch, and no image appears
// twice in an epoch.
#include <cstdint>
#include <memory>
#include <vector>

#include "apps/data/dataset.h"
#include "engine/tensor.h"

namespace dd::data {

// Where the next batch starts: images order(epoch)[position .. position + batch_size).
// position is a multiple of batch_size with position + batch_size <= N.
struct LoaderState {
  uint64_t epoch = 0;
  uint64_t position = 0;
};

struct LoaderOptions {
  int64_t batch_size = 64;
  uint64_t seed = 0;
  bool random_flip = true;  // mirror left-right with probability 1/2 (torchvision's RandomHorizontalFlip)
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> data, const LoaderOptions& options);

  // float32 CPU [B, H, W, C] (B: the local batch once sharded), pixel x mapped to x / 127.5 - 1 (0 -> -1, 255 -> 1 exactly).
  Tensor next_batch();
  // The same into an existing float32 CPU [B, H, W, C] tensor, so a training loop need not allocate.
  void next_batch_into(Tensor& out);

  LoaderState state() const { return state_; }
  // Throws if the state cannot come from this loader's dataset and batch size (a resume
  // with another dataset or batch size would silently change the data order).
  void set_state(const LoaderState& s);

  // Data parallel (apps/dist/shard.h): this loader yields rank's contiguous slice of every global
  // batch (batch_size / world images, starting at rank * that), while its state and the shuffle and
  // flips stay those of the whole global batch, so the ranks' slices in rank order are exactly the
  // batch of one process. Throws when world does not divide the batch size.
  void set_shard(int rank, int world);
  int64_t local_batch_size() const { return batch_ / world_; }

  int64_t batch_size() const { return batch_; }
  int64_t batches_per_epoch() const { return data_->count / batch_; }
  const Dataset& dataset() const { return *data_; }
  Shape batch_shape() const { return {local_batch_size(), data_->height, data_->width, data_->channels}; }

  // The epoch's image order (a permutation of 0..N-1) and whether the image at position p
  // of that order is mirrored: exposed so tests and tools can see what a batch holds.
  std::vector<int64_t> epoch_order(uint64_t epoch) const;
  bool flipped(uint64_t epoch, uint64_t position) const;

 private:
  const std::vector<int64_t>& order_for(uint64_t epoch);

  std::shared_ptr<const Dataset> data_;
  int64_t batch_;
  int rank_ = 0, world_ = 1;
  uint64_t key_;  // the Philox key of the loader's streams, derived from the seed
  bool flip_;
  LoaderState state_;
  uint64_t cached_epoch_ = 0;
  std::vector<int64_t> order_;  // epoch_order(cached_epoch_), or empty
  float lut_[256];
};

}  // namespace dd::data

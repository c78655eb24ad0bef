#include "apps/data/loader.h"

#include <utility>

#include "engine/error.h"
#include "engine/rng.h"

namespace dd::data {

namespace {
// Stream layout per epoch e: block (e << 33) + i drives swap i of the shuffle, block
// (e << 33) + 2^32 + p the flip of position p. That bounds N below 2^32 and e below 2^31.
constexpr uint64_t kEpochShift = 33;
constexpr uint64_t kFlipBase = uint64_t{1} << 32;
constexpr uint64_t kMaxEpoch = uint64_t{1} << 31;

// The trainer seeds its noise Generator with the same user seed; hashing it gives the
// loader a different Philox key, so data order and noise never share random numbers.
uint64_t loader_key(uint64_t seed) {
  uint64_t z = seed ^ 0x64645f6c6f616465ull;  // "dd_loade"
  z += 0x9e3779b97f4a7c15ull;                // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Below this many bytes per batch the thread start-up costs more than the copy.
constexpr int64_t kParallelBytes = 1 << 16;
}  // namespace

Loader::Loader(std::shared_ptr<const Dataset> data, const LoaderOptions& options)
    : data_(std::move(data)), batch_(options.batch_size), key_(loader_key(options.seed)), flip_(options.random_flip) {
  DD_CHECK(data_, "Loader: no dataset");
  data_->validate();
  DD_CHECK(batch_ > 0, "Loader: batch size ", batch_, " must be positive");
  DD_CHECK(batch_ <= data_->count, "Loader: batch size ", batch_, " exceeds the ", data_->count, " images of ",
           summary(*data_));
  DD_CHECK(static_cast<uint64_t>(data_->count) < kFlipBase, "Loader: ", summary(*data_),
           " has too many images (at most 2^32 - 1)");
  for (int v = 0; v < 256; ++v) lut_[v] = static_cast<float>(v) / 127.5f - 1.0f;
}

std::vector<int64_t> Loader::epoch_order(uint64_t epoch) const {
  DD_CHECK(epoch < kMaxEpoch, "Loader: epoch ", epoch, " out of range (at most 2^31 - 1)");
  const int64_t n = data_->count;
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  // Fisher-Yates: swap i draws uniform_int(i + 1) from its own block, so the order is a
  // function of (key, epoch) alone.
  Generator gen(key_, epoch << kEpochShift);
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(gen.uniform_int(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

bool Loader::flipped(uint64_t epoch, uint64_t position) const {
  if (!flip_) return false;
  DD_CHECK(epoch < kMaxEpoch && position < kFlipBase, "Loader: epoch ", epoch, " position ", position,
           " out of range");
  Generator gen(key_, (epoch << kEpochShift) + kFlipBase + position);
  return gen.uniform_int(2) == 1;
}

const std::vector<int64_t>& Loader::order_for(uint64_t epoch) {
  if (order_.empty() || cached_epoch_ != epoch) {
    order_ = epoch_order(epoch);
    cached_epoch_ = epoch;
  }
  return order_;
}

void Loader::set_shard(int rank, int world) {
  DD_CHECK(world >= 1 && rank >= 0 && rank < world, "Loader::set_shard: rank ", rank, " of world size ", world);
  DD_CHECK(batch_ % world == 0, "--batch-size ", batch_, " is the global batch and must split evenly over ", world,
           " ranks (world size ", world, ")");
  rank_ = rank;
  world_ = world;
}

void Loader::set_state(const LoaderState& s) {
  const auto n = static_cast<uint64_t>(data_->count);
  const auto b = static_cast<uint64_t>(batch_);
  DD_CHECK(s.epoch < kMaxEpoch, "Loader::set_state: epoch ", s.epoch, " out of range (at most 2^31 - 1)");
  DD_CHECK(s.position % b == 0 && s.position + b <= n, "Loader::set_state: position ", s.position,
           " is not the start of a batch of ", b, " in ", summary(*data_),
           " (valid: multiples of ", b, " up to ", (n / b - 1) * b,
           "); was the state saved with another batch size or dataset?");
  state_ = s;
}

Tensor Loader::next_batch() {
  Tensor out = Tensor::empty(batch_shape());
  next_batch_into(out);
  return out;
}

void Loader::next_batch_into(Tensor& out) {
  DD_CHECK(out.defined() && out.is_cpu() && out.shape() == batch_shape(), "Loader::next_batch_into: got ",
           out.defined() ? describe(out) : std::string("an undefined tensor"), ", expected ",
           shape_str(batch_shape()), " cpu");
  const std::vector<int64_t>& order = order_for(state_.epoch);
  const int64_t h = data_->height, w = data_->width, c = data_->channels;
  const int64_t img = data_->image_bytes();
  // This rank's slice of the global batch; flips are drawn at the global position so a shard sees
  // the same mirrored images one process would.
  const int64_t nb = local_batch_size();
  const uint64_t epoch = state_.epoch, pos0 = state_.position + static_cast<uint64_t>(rank_ * nb);
  // Decided before the parallel loop: flipped() may throw, which must not happen inside it.
  std::vector<char> flip(static_cast<std::size_t>(nb));
  for (int64_t b = 0; b < nb; ++b) flip[static_cast<std::size_t>(b)] = flipped(epoch, pos0 + b);
  float* dst_all = out.data();
  const float* lut = lut_;
  const Dataset& d = *data_;
#pragma omp parallel for schedule(static) if (nb * img >= kParallelBytes)
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* src = d.image(order[static_cast<std::size_t>(pos0) + b]);
    float* dst = dst_all + b * img;
    if (!flip[static_cast<std::size_t>(b)]) {
      for (int64_t j = 0; j < img; ++j) dst[j] = lut[src[j]];
      continue;
    }
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* srow = src + y * w * c;
      float* drow = dst + y * w * c;
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) drow[x * c + k] = lut[srow[(w - 1 - x) * c + k]];
    }
  }
  // Advance; an epoch ends when the next full batch would not fit (see the header).
  state_.position += static_cast<uint64_t>(batch_);
  if (state_.position + static_cast<uint64_t>(batch_) > static_cast<uint64_t>(data_->count)) {
    DD_CHECK(state_.epoch + 1 < kMaxEpoch, "Loader: epoch counter exhausted");
    state_.epoch += 1;
    state_.position = 0;
  }
}

}  // namespace dd::data

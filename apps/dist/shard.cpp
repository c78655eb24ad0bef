#include "apps/dist/shard.h"

#include "engine/error.h"

namespace dd::dist {

int64_t local_batch(int64_t global_batch, int world_size) {
  DD_CHECK(world_size >= 1, "world size must be at least 1, got ", world_size);
  DD_CHECK(global_batch > 0, "--batch-size must be positive, got ", global_batch);
  DD_CHECK(global_batch % world_size == 0, "--batch-size ", global_batch, " is the global batch and must split evenly over ",
           world_size, " ranks (world size ", world_size, "); use a multiple of ", world_size);
  return global_batch / world_size;
}

std::vector<int64_t> epoch_shard_positions(int64_t n, int64_t global_batch, int rank, int world_size) {
  const int64_t b = local_batch(global_batch, world_size);
  DD_CHECK(rank >= 0 && rank < world_size, "rank ", rank, " out of range for world size ", world_size);
  std::vector<int64_t> pos;
  for (int64_t start = 0; start + global_batch <= n; start += global_batch)
    for (int64_t i = 0; i < b; ++i) pos.push_back(start + rank * b + i);
  return pos;
}

uint64_t rank_draw_offset(uint64_t base, int64_t micro, int rank, int world_size, uint64_t blocks) {
  DD_CHECK(rank >= 0 && rank < world_size && micro >= 0, "rank_draw_offset: rank ", rank, " of ", world_size,
           ", micro-batch ", micro);
  return base + (static_cast<uint64_t>(micro) * static_cast<uint64_t>(world_size) + static_cast<uint64_t>(rank)) * blocks;
}

}  // namespace dd::dist

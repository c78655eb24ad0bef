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

uint64_t rank_seed(uint64_t seed, int rank) {
  if (rank == 0) return seed;
  uint64_t z = seed ^ (0x64645f72616e6b00ull + static_cast<uint64_t>(rank));  // "dd_rank" + rank
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace dd::dist

#pragma once
// What each rank of a data-parallel run does with the global batch and the random streams.
// Pure functions, so the tests check the semantics without launching processes.
//
// --batch-size is the global batch B; rank r of W trains on images [r*B/W, (r+1)*B/W) of each global
// batch of the single-process order (apps/data/loader.h's Loader::set_shard). Concatenating the ranks'
// slices in rank order therefore gives exactly the batch one process would train on, epoch after
// epoch, and the loader's state (epoch, position) stays global: it means the same on every rank and
// for any world size.
#include <cstdint>
#include <vector>

namespace dd::dist {

// B / W; throws naming --batch-size and the world size when W does not divide B.
int64_t local_batch(int64_t global_batch, int world_size);

// The positions (within one epoch's order) that rank `rank` reads in the epoch, batch after batch,
// for an epoch of n images and global batch `global_batch` (drop_last like the loader).
std::vector<int64_t> epoch_shard_positions(int64_t n, int64_t global_batch, int rank, int world_size);

// The seed of rank r's noise/timestep generator. Rank 0 keeps the run's seed, so world size 1 draws
// exactly what a single process always drew; other ranks get a splitmix64 hash of (seed, rank), an
// independent Philox key, so their streams never overlap rank 0's whatever the offsets. All ranks
// consume the same number of blocks per step (same local batch), so one offset, saved by rank 0,
// describes every rank's position: resume with the same world size is exact.
uint64_t rank_seed(uint64_t seed, int rank);

}  // namespace dd::dist

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

// Where rank `rank` draws micro-batch `micro` of a step whose draws start at Philox offset `base`,
// when one micro-batch's draws (timesteps, noise, coins, dropout masks) take `blocks` blocks: the
// block range one process with --grad-accum W*A would give its micro-batch micro*W + rank. Rank r's
// data is that micro-batch too (slice r of global batch `micro`), so W ranks with global batch W*b
// train exactly like one process with --batch-size b --grad-accum W (the gradient average is the
// accumulated mean), and a run is reproducible for any world size. After the step every rank moves
// to base + A*W*blocks, so one offset (saved by rank 0) describes all ranks: resume is exact.
uint64_t rank_draw_offset(uint64_t base, int64_t micro, int rank, int world_size, uint64_t blocks);

}  // namespace dd::dist

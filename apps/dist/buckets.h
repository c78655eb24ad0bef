#pragma once
// How the flat gradient arena (models/params.h: every parameter's gradient back to back, in
// registration order) is cut into the buckets the GPU path all-reduces one at a time, and when each
// bucket may go: pure functions, so the CPU tests check the partition and the schedule without a GPU.
//
// A bucket is a run of whole, consecutive parameters, so it is one contiguous slice of the arena
// and one collective. Buckets overlap the backward pass: a bucket is sent once no backward closure
// still to run adds into any of its parameters (and the buckets before it in the send order are sent).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dd::dist {

struct Bucket {
  int64_t begin = 0, end = 0;          // elements [begin, end) of the arena
  std::size_t first = 0, last = 0;     // parameters [first, last)
};

// Consecutive parameters (element counts, in arena order) into buckets of at most max_elems
// elements each; a parameter larger than that is a bucket of its own (never split). Together the
// buckets cover the arena exactly, in order. max_elems must be > 0.
std::vector<Bucket> partition_buckets(const std::vector<int64_t>& param_numel, int64_t max_elems);

// DD_DIST_BUCKET_MB (megabytes of float32 gradient per bucket, default 25) in elements; throws
// naming the variable when it is not a number > 0.
int64_t bucket_elems_from_env();

// When each bucket is final: last_node[p] is the position, in the backward's running order
// (0 = the first closure run), of the last closure that adds into parameter p, or -1 when none does
// (its gradient is the zero of zero_grad from the start). A bucket is ready after the largest
// last_node of its parameters; returns that per bucket (-1: ready before the backward starts).
std::vector<int64_t> bucket_ready_after(const std::vector<Bucket>& buckets, const std::vector<int64_t>& last_node);

// The order every rank sends the buckets in: the last bucket of the arena first. NCCL pairs up the
// ranks' collectives by the order they are issued, so the order may not depend on anything a rank
// sees alone (its own tape); the backward meets the parameters registered last first, which makes
// this the order the buckets tend to become ready in.
std::vector<std::size_t> bucket_send_order(std::size_t buckets);

// How many buckets of `order` have been sent once closure `node` has run (node -1: before the
// first), given `sent` sent before: the next ones go while they are ready, and a bucket that is
// ready waits for the earlier ones in the order.
std::size_t buckets_sendable(const std::vector<std::size_t>& order, const std::vector<int64_t>& ready_after,
                             std::size_t sent, int64_t node);

}  // namespace dd::dist

// The CPU side of the data-parallel GPU path (apps/dist/nccl_comm.h, buckets.h; issue 16): the byte
// broadcast that carries NCCL's unique id over the TCP group, the gradient buckets and their send
// schedule, and the refusal of a GPU launch that cannot run. The NCCL calls themselves need a GPU
// (tests/gpu/test_nccl.cpp).
#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "apps/dist/buckets.h"
#include "apps/dist/comm.h"
#include "apps/dist/nccl_comm.h"
#include "apps/dist/tcp_group.h"
#include "engine/device.h"
#include "engine/error.h"
#include "tests/support/compare.h"
#include "tests/support/loopback_ranks.h"

using namespace dd;
using namespace dd::dist;
using namespace dd::test;

// Ranks as threads over loopback TCP, through Comm as the trainer uses it: rank 0's bytes (every
// value 0..255, as an NCCL id may hold, and a buffer larger than a socket buffer) arrive unchanged.
TEST_CASE("dist bytes: the byte broadcast carries rank 0's bytes exactly over the TCP group", "[dist][tcp]") {
  DD_TEST_RANDOM(rng);
  for (const int world : {2, 3}) {
    INFO("world size " << world);
    const int port = free_port();
    std::vector<unsigned char> id(128), big(300001);
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<unsigned char>(i * 2);  // 0x00..0xFE
    for (auto& b : big) b = static_cast<unsigned char>(rng.uniform_int(0, 255));
    std::vector<std::vector<unsigned char>> got_id(world, std::vector<unsigned char>(id.size(), 0xFF)),
        got_big(world, std::vector<unsigned char>(big.size(), 0));
    got_id[0] = id;
    got_big[0] = big;
    const auto errors = run_ranks(world, [&](int r) {
      LaunchEnv env;
      env.rank = env.local_rank = r;
      env.world_size = world;
      env.launcher = "torchrun";
      env.master_addr = "127.0.0.1";
      env.master_port = port;
      const auto comm = Comm::init(env);
      REQUIRE(comm->local_rank() == r);
      comm->broadcast_bytes(got_id[r].data(), got_id[r].size());
      comm->broadcast_bytes(got_big[r].data(), got_big[r].size());
      comm->broadcast_bytes(nullptr, 0);  // nothing to send: returns at once on every rank
      comm->barrier();
    });
    for (int r = 0; r < world; ++r) {
      INFO("rank " << r);
      CHECK(errors[r].empty());
      CHECK(got_id[r] == id);
      CHECK(got_big[r] == big);
    }
  }
}

TEST_CASE("dist buckets: contiguous, covering the arena, within the size, each parameter in one", "[dist]") {
  DD_TEST_RANDOM(rng);
  for (int trial = 0; trial < 200; ++trial) {
    const int count = rng.uniform_int(0, 60);
    std::vector<int64_t> numel;
    int64_t total = 0;
    for (int i = 0; i < count; ++i) {
      // Mostly small (biases, norms), some large (a conv weight), some zero-sized.
      const double u = rng.uniform(1, 0.0, 1.0)[0];
      numel.push_back(u < 0.1 ? 0 : u < 0.8 ? static_cast<int64_t>(u * 100) : static_cast<int64_t>(u * 5000));
      total += numel.back();
    }
    const int64_t max_elems = rng.uniform_int(1, 3000);
    INFO("trial " << trial << ", " << count << " parameters, " << total << " elements, buckets of " << max_elems);
    const std::vector<Bucket> b = partition_buckets(numel, max_elems);
    if (count == 0) {
      CHECK(b.empty());
      continue;
    }
    REQUIRE(!b.empty());
    CHECK(b.front().begin == 0);
    CHECK(b.front().first == 0);
    CHECK(b.back().end == total);
    CHECK(b.back().last == numel.size());
    std::vector<int> seen(numel.size(), 0);
    for (std::size_t k = 0; k < b.size(); ++k) {
      INFO("bucket " << k);
      if (k > 0) {
        CHECK(b[k].begin == b[k - 1].end);    // contiguous
        CHECK(b[k].first == b[k - 1].last);   // consecutive parameters
        CHECK(b[k].end > b[k].begin);         // no empty bucket after the first
      }
      int64_t elems = 0, nonzero = 0;
      for (std::size_t p = b[k].first; p < b[k].last; ++p) elems += numel[p], nonzero += numel[p] > 0, ++seen[p];
      CHECK(elems == b[k].end - b[k].begin);
      // Within the size, unless one parameter alone exceeds it (never split).
      CHECK((elems <= max_elems || nonzero == 1));
      // As full as it may be: the next parameter would not have fitted.
      if (k + 1 < b.size()) CHECK(elems + numel[b[k + 1].first] > max_elems);
    }
    for (std::size_t p = 0; p < numel.size(); ++p) CHECK(seen[p] == 1);
  }
  CHECK_THROWS_WITH(partition_buckets({4, 4}, 0), Catch::Contains("must be > 0"));
  CHECK(partition_buckets({10, 3, 3, 3, 10}, 6).size() == 4);  // [10] [3 3] [3] [10]
}

TEST_CASE("dist buckets: DD_DIST_BUCKET_MB sets the size, a bad value names the variable", "[dist]") {
  ::unsetenv("DD_DIST_BUCKET_MB");
  CHECK(bucket_elems_from_env() == 25 * 1024 * 1024 / 4);
  ::setenv("DD_DIST_BUCKET_MB", "0.5", 1);
  CHECK(bucket_elems_from_env() == 512 * 1024 / 4);
  for (const char* bad : {"0", "-3", "abc", "25MB"}) {
    ::setenv("DD_DIST_BUCKET_MB", bad, 1);
    CHECK_THROWS_WITH(bucket_elems_from_env(), Catch::Contains("DD_DIST_BUCKET_MB") && Catch::Contains(bad));
  }
  ::unsetenv("DD_DIST_BUCKET_MB");
}

// The schedule a traced backward gives: a bucket is ready after the last closure that adds into any
// of its parameters; buckets go in the fixed order (last of the arena first), each once it and every
// earlier one in that order are ready.
TEST_CASE("dist buckets: ready after the last closure that adds into them, sent in the fixed order", "[dist]") {
  // 6 parameters, buckets [0,1] [2,3] [4] [5]
  const std::vector<Bucket> b = partition_buckets({2, 2, 2, 2, 4, 4}, 4);
  REQUIRE(b.size() == 4);
  // Closures (in running order) that last add into each parameter; parameter 3 receives nothing.
  const std::vector<int64_t> last_node{7, 5, 4, -1, 2, 0};
  const std::vector<int64_t> ready = bucket_ready_after(b, last_node);
  CHECK(ready == std::vector<int64_t>{7, 4, 2, 0});
  const std::vector<std::size_t> order = bucket_send_order(b.size());
  CHECK(order == std::vector<std::size_t>{3, 2, 1, 0});
  CHECK(buckets_sendable(order, ready, 0, -1) == 0);
  CHECK(buckets_sendable(order, ready, 0, 0) == 1);  // bucket 3
  CHECK(buckets_sendable(order, ready, 1, 1) == 1);
  CHECK(buckets_sendable(order, ready, 1, 2) == 2);  // bucket 2
  CHECK(buckets_sendable(order, ready, 2, 6) == 3);  // bucket 1 (ready after 4)
  CHECK(buckets_sendable(order, ready, 3, 7) == 4);  // bucket 0
  // A bucket ready early waits for the ones before it in the order (the ranks issue the same
  // sequence of collectives whatever their own tapes say).
  const std::vector<int64_t> early_first{-1, 9, 3, 5};
  CHECK(buckets_sendable(order, early_first, 0, -1) == 0);  // bucket 0 is ready but goes last
  CHECK(buckets_sendable(order, early_first, 0, 5) == 2);
  CHECK(buckets_sendable(order, early_first, 2, 9) == 4);
  // Every closure traced past the end sends everything.
  CHECK(buckets_sendable(order, ready, 0, 100) == 4);
  CHECK_THROWS_WITH(bucket_ready_after(b, {1, 2}), Catch::Contains("traced"));
}

// What a GPU launch says where it cannot run: without NCCL it names NCCL; with NCCL but without a
// GPU it names the missing GPU (the CLI side: tests/cli/dist_nccl_refusal.sh).
TEST_CASE("dist nccl: a build without NCCL or a machine without a GPU refuses the GPU communicator clearly", "[dist]") {
  const Comm single;
  if (!nccl_built()) {
    CHECK_THROWS_WITH(require_nccl(2), Catch::Contains("needs NCCL") && Catch::Contains("--device cpu"));
    CHECK_THROWS_WITH(NcclComm(single, 1.0), Catch::Contains("needs NCCL"));
    return;
  }
  CHECK_NOTHROW(require_nccl(2));
  if (cuda_available()) return;  // tests/gpu/test_nccl.cpp runs it
  CHECK_THROWS_WITH(NcclComm(single, 1.0), Catch::Contains("rank 0 of 1") && Catch::Contains("sees no GPU"));
}

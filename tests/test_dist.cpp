// Data-parallel launch detection and sharding semantics (apps/dist/, issue 16): pure functions, so
// no processes are launched here (tests/cli/dist_mpi.sh runs the real thing under mpirun).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apps/data/loader.h"
#include "apps/dist/comm.h"
#include "apps/dist/launch.h"
#include "apps/dist/shard.h"
#include "apps/dist/tcp_group.h"
#include "engine/error.h"
#include "tests/support/compare.h"
#include "tests/support/loopback_ranks.h"

using namespace dd;
using namespace dd::dist;
using namespace dd::test;

namespace {

using Env = std::map<std::string, std::string>;

LaunchEnv detect(const Env& env) {
  return detect_launch([&](const std::string& k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

// The error message of detect(env), or "" when it does not throw.
std::string detect_error(const Env& env) {
  try {
    detect(env);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Sets/unsets real environment variables for one scope and puts the old values back.
class ScopedEnv {
 public:
  void set(const std::string& k, const std::optional<std::string>& v) {
    if (!saved_.count(k)) {
      const char* old = std::getenv(k.c_str());
      saved_[k] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    if (v) ::setenv(k.c_str(), v->c_str(), 1);
    else ::unsetenv(k.c_str());
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

const char* kAllVars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK",
                          "PMI_SIZE", "MPI_LOCALRANKID", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                          "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"};

std::shared_ptr<const data::Dataset> indexed(test::Random& rng, int64_t n) {
  auto d = std::make_shared<data::Dataset>();
  d->name = "synthetic";
  d->count = n;
  d->height = 2;
  d->width = 3;
  d->channels = 1;
  d->pixels.resize(static_cast<std::size_t>(n * 6));
  for (auto& b : d->pixels) b = static_cast<uint8_t>(rng.uniform_int(0, 255));
  // The first two bytes spell the index, so a batch tells which images it holds.
  for (int64_t i = 0; i < n; ++i) {
    d->pixels[static_cast<std::size_t>(i * 6)] = static_cast<uint8_t>(i & 255);
    d->pixels[static_cast<std::size_t>(i * 6 + 1)] = static_cast<uint8_t>(i >> 8);
  }
  return d;
}

}  // namespace

TEST_CASE("launch: each launcher's variables give rank, world size and local rank", "[dist]") {
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(2, 64);
  const int rank = rng.uniform_int(0, world - 1);
  const int local = rng.uniform_int(0, std::min(7, world - 1));
  const std::string r = std::to_string(rank), w = std::to_string(world), l = std::to_string(local);
  struct Case {
    const char* launcher;
    Env env;
  };
  const Case cases[] = {
      {"openmpi", {{"OMPI_COMM_WORLD_RANK", r}, {"OMPI_COMM_WORLD_SIZE", w}, {"OMPI_COMM_WORLD_LOCAL_RANK", l}}},
      {"mpich", {{"PMI_RANK", r}, {"PMI_SIZE", w}, {"MPI_LOCALRANKID", l}}},
      {"torchrun",
       {{"RANK", r}, {"WORLD_SIZE", w}, {"LOCAL_RANK", l}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}}},
      {"slurm", {{"SLURM_PROCID", r}, {"SLURM_NTASKS", w}, {"SLURM_LOCALID", l}}},
  };
  for (const Case& c : cases) {
    INFO(c.launcher);
    const LaunchEnv e = detect(c.env);
    CHECK(e.launcher == c.launcher);
    CHECK(e.rank == rank);
    CHECK(e.world_size == world);
    CHECK(e.local_rank == local);
    CHECK(e.distributed());
    CHECK(e.is_root() == (rank == 0));
  }
  CHECK(detect({{"RANK", r}, {"WORLD_SIZE", w}, {"LOCAL_RANK", l}, {"MASTER_ADDR", "n"}, {"MASTER_PORT", "1234"}})
            .master_port == 1234);
  // MPICH's local rank is optional.
  CHECK(detect({{"PMI_RANK", r}, {"PMI_SIZE", w}}).local_rank == 0);
}

TEST_CASE("launch: nothing set is one process, and MPI wins over Slurm", "[dist]") {
  const LaunchEnv single = detect({});
  CHECK(single.launcher == "single");
  CHECK(single.rank == 0);
  CHECK(single.world_size == 1);
  CHECK_FALSE(single.distributed());
  // mpirun inside a Slurm allocation: the MPI variables describe the processes.
  const LaunchEnv e = detect({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"},
                              {"SLURM_LOCALID", "0"}});
  CHECK(e.launcher == "openmpi");
  CHECK(e.rank == 1);
  CHECK(e.world_size == 4);
}

TEST_CASE("launch: errors name the missing, malformed or out-of-range variable", "[dist]") {
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(1, 16);
  const std::string w = std::to_string(world);
  CHECK_THAT(detect_error({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}}),
             Catch::Contains("OMPI_COMM_WORLD_SIZE is not set"));
  CHECK_THAT(detect_error({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", w}}),
             Catch::Contains("OMPI_COMM_WORLD_LOCAL_RANK is not set"));
  CHECK_THAT(detect_error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", w}}), Catch::Contains("SLURM_LOCALID is not set"));
  CHECK_THAT(detect_error({{"WORLD_SIZE", w}}), Catch::Contains("RANK is not set"));
  CHECK_THAT(detect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}}),
             Catch::Contains("MASTER_ADDR is not set"));
  CHECK_THAT(detect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "a"}}),
             Catch::Contains("MASTER_PORT is not set"));
  CHECK_THAT(
      detect_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "0"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "0"}}),
      Catch::Contains("MASTER_PORT=0"));
  // rank >= world size, with a random excess
  const std::string big = std::to_string(world + rng.uniform_int(0, 5));
  CHECK_THAT(detect_error({{"PMI_RANK", big}, {"PMI_SIZE", w}}), Catch::Contains("PMI_RANK=" + big + " is not below PMI_SIZE"));
  CHECK_THAT(detect_error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", w}, {"SLURM_LOCALID", big}}),
             Catch::Contains("SLURM_LOCALID=" + big));
  CHECK_THAT(detect_error({{"PMI_RANK", "0"}, {"PMI_SIZE", "0"}}), Catch::Contains("PMI_SIZE=0"));
  for (const char* bad : {"", "-1", "1x", " 1", "one", "99999999999"}) {
    INFO("value '" << bad << "'");
    CHECK_THAT(detect_error({{"OMPI_COMM_WORLD_RANK", bad}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}}),
               Catch::Contains("OMPI_COMM_WORLD_RANK"));
    CHECK_THAT(detect_error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", bad}, {"SLURM_LOCALID", "0"}}),
               Catch::Contains("SLURM_NTASKS"));
  }
}

TEST_CASE("launch: the process environment is read through getenv", "[dist]") {
  ScopedEnv scope;
  for (const char* v : kAllVars) scope.set(v, std::nullopt);
  CHECK(detect_launch().launcher == "single");
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(2, 9), rank = rng.uniform_int(0, world - 1);
  scope.set("SLURM_PROCID", std::to_string(rank));
  scope.set("SLURM_NTASKS", std::to_string(world));
  CHECK_THROWS_WITH(detect_launch(), Catch::Contains("SLURM_LOCALID"));
  scope.set("SLURM_LOCALID", "0");
  const LaunchEnv e = detect_launch();
  CHECK(e.launcher == "slurm");
  CHECK(e.rank == rank);
  CHECK(e.world_size == world);
}

TEST_CASE("launch: one process needs no communicator (a torchrun-style world joins over TCP)", "[dist]") {
  const auto single = Comm::init(LaunchEnv{});
  CHECK(single->world_size() == 1);
  CHECK(single->is_root());
  CHECK(std::string(single->backend()) == "none");
}

// Ranks as threads of one process talking over loopback TCP: the same code path as processes.
TEST_CASE("tcp group: all-reduce in rank order gives every rank the same bits, broadcast, barrier", "[dist][tcp]") {
  DD_TEST_RANDOM(rng);
  for (const int world : {2, 3}) {
    INFO("world size " << world);
    const int port = free_port();
    const int64_t n = 100003;  // odd, and bigger than a socket buffer: the sends block and resume
    std::vector<std::vector<float>> data(world), expect(world);
    for (int r = 0; r < world; ++r)
      for (double v : rng.uniform(n, -1.0, 1.0)) data[r].push_back(static_cast<float>(v));
    std::vector<float> want(n);
    for (int64_t i = 0; i < n; ++i) {
      float s = data[0][i];
      for (int r = 1; r < world; ++r) s += data[r][i];  // rank order, in float, as rank 0 adds
      want[i] = s * (1.0f / static_cast<float>(world));
    }
    std::vector<std::vector<float>> bcast(world, std::vector<float>(7, -1.0f));
    for (int i = 0; i < 7; ++i) bcast[0][i] = static_cast<float>(i) + 0.5f;
    const auto errors = run_ranks(world, [&](int r) {
      TcpGroup g(r, world, "127.0.0.1", port, 20.0);
      g.allreduce_mean(data[r].data(), n);
      g.barrier();
      g.broadcast_from_root(bcast[r].data(), 7);
    });
    for (int r = 0; r < world; ++r) {
      INFO("rank " << r);
      CHECK(errors[r].empty());
      CHECK(std::memcmp(data[r].data(), want.data(), sizeof(float) * n) == 0);
      CHECK(bcast[r] == bcast[0]);
    }
  }
}

TEST_CASE("tcp group: a wrong world size, an absent rank 0 or a vanished peer fail in time, naming it",
          "[dist][tcp]") {
  {
    const int port = free_port();
    const auto errors = run_ranks(2, [&](int r) { TcpGroup g(r, r == 0 ? 2 : 3, "127.0.0.1", port, 10.0); });
    CHECK_THAT(errors[0], Catch::Contains("WORLD_SIZE"));
    CHECK_THAT(errors[1], Catch::Contains("refused"));
  }
  {
    const int port = free_port();  // nobody listens there
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(TcpGroup(1, 2, "127.0.0.1", port, 1.0),
                      Catch::Contains("cannot reach rank 0") && Catch::Contains("DD_DIST_TIMEOUT"));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  }
  {
    const int port = free_port();
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(TcpGroup(0, 2, "127.0.0.1", port, 1.0), Catch::Contains("ranks 1 of 2 did not connect"));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  }
  {
    // Rank 1 leaves after joining: rank 0's all-reduce fails at once instead of waiting.
    const int port = free_port();
    const auto errors = run_ranks(2, [&](int r) {
      TcpGroup g(r, 2, "127.0.0.1", port, 30.0);
      if (r == 1) return g.close_all();
      float x = 1.0f;
      g.allreduce_mean(&x, 1);
    });
    CHECK_THAT(errors[0], Catch::Contains("rank 1") && Catch::Contains("closed the connection"));
    CHECK(errors[1].empty());
  }
  {
    ScopedEnv scope;
    scope.set("DD_DIST_TIMEOUT", "soon");
    CHECK_THROWS_WITH(TcpGroup::timeout_from_env(), Catch::Contains("DD_DIST_TIMEOUT"));
    scope.set("DD_DIST_TIMEOUT", "2.5");
    CHECK(TcpGroup::timeout_from_env() == 2.5);
  }
}

TEST_CASE("shard: the global batch splits evenly or the error names --batch-size and the world size", "[dist]") {
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(2, 8);
  const int64_t b = rng.uniform_int(1, 16);
  CHECK(local_batch(b * world, world) == b);
  CHECK(local_batch(b, 1) == b);
  const int64_t bad = b * world + rng.uniform_int(1, world - 1);
  CHECK_THROWS_WITH(local_batch(bad, world),
                    Catch::Contains("--batch-size " + std::to_string(bad)) &&
                        Catch::Contains("world size " + std::to_string(world)));
}

TEST_CASE("shard: one epoch's shards are disjoint and cover its full batches", "[dist]") {
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(1, 6);
  const int64_t global = world * rng.uniform_int(1, 5);
  const int64_t n = global * rng.uniform_int(1, 6) + rng.uniform_int(0, static_cast<int>(global) - 1);
  std::set<int64_t> seen;
  std::size_t total = 0;
  for (int r = 0; r < world; ++r) {
    const std::vector<int64_t> pos = epoch_shard_positions(n, global, r, world);
    total += pos.size();
    seen.insert(pos.begin(), pos.end());
  }
  const int64_t covered = n / global * global;  // drop_last
  CHECK(total == static_cast<std::size_t>(covered));
  CHECK(seen.size() == static_cast<std::size_t>(covered));
  CHECK((seen.empty() || (*seen.begin() == 0 && *seen.rbegin() == covered - 1)));
}

TEST_CASE("shard: the ranks' loader slices in rank order are the single-process batches", "[dist]") {
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(2, 4);
  const int64_t global = world * rng.uniform_int(1, 3);
  const int64_t n = global * rng.uniform_int(2, 4) + rng.uniform_int(0, static_cast<int>(global) - 1);
  auto data = indexed(rng, n);
  const uint64_t seed = static_cast<uint64_t>(rng.uniform_int(0, 1 << 30));
  data::Loader single(data, {global, seed, true});
  std::vector<std::unique_ptr<data::Loader>> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.push_back(std::make_unique<data::Loader>(data, data::LoaderOptions{global, seed, true}));
    ranks.back()->set_shard(r, world);
    CHECK(ranks.back()->batch_shape()[0] == global / world);
  }
  // Start mid-run (a resume), then go over an epoch boundary, so the global state is exercised too.
  const data::LoaderState start{static_cast<uint64_t>(rng.uniform_int(0, 3)), 0};
  single.set_state(start);
  for (auto& l : ranks) l->set_state(start);
  const int steps = static_cast<int>(2 * single.batches_per_epoch() + 1);
  std::set<int64_t> epoch_images;
  for (int s = 0; s < steps; ++s) {
    const Tensor whole = single.next_batch();
    const int64_t per = whole.numel() / world;
    for (int r = 0; r < world; ++r) {
      const Tensor part = ranks[static_cast<std::size_t>(r)]->next_batch();
      REQUIRE(part.numel() == per);
      // Bitwise: the same images with the same flips.
      CHECK(std::equal(part.data(), part.data() + per, whole.data() + r * per));
      CHECK(ranks[static_cast<std::size_t>(r)]->state().epoch == single.state().epoch);
      CHECK(ranks[static_cast<std::size_t>(r)]->state().position == single.state().position);
    }
  }
  CHECK_THROWS_WITH(single.set_shard(0, static_cast<int>(global) + 1), Catch::Contains("--batch-size"));
}

TEST_CASE("shard: the ranks' draws tile the step as one process's accumulated micro-batches", "[dist]") {
  DD_TEST_RANDOM(rng);
  const int world = rng.uniform_int(1, 6), accum = rng.uniform_int(1, 4);
  const uint64_t blocks = static_cast<uint64_t>(rng.uniform_int(1, 1000));
  const uint64_t base = rng.engine()() >> 8;
  std::set<uint64_t> starts;
  for (int r = 0; r < world; ++r)
    for (int j = 0; j < accum; ++j) {
      const uint64_t at = rank_draw_offset(base, j, r, world, blocks);
      // micro-batch j of rank r is micro-batch j*W + r of one process with --grad-accum W*A
      CHECK(at == base + static_cast<uint64_t>(j * world + r) * blocks);
      starts.insert(at);
    }
  // Disjoint block ranges of equal length that tile [base, base + A*W*blocks): no overlap, no gap.
  REQUIRE(starts.size() == static_cast<std::size_t>(world * accum));
  uint64_t expect = base;
  for (uint64_t at : starts) {
    CHECK(at == expect);
    expect = at + blocks;
  }
  CHECK(expect == base + static_cast<uint64_t>(world * accum) * blocks);
  CHECK_THROWS_WITH(rank_draw_offset(base, 0, world, world, blocks), Catch::Contains("rank " + std::to_string(world)));
}

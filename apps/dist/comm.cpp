#include "apps/dist/comm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "engine/error.h"

#ifdef DD_WITH_MPI
#include <mpi.h>
#endif

namespace dd::dist {

namespace {
float* host_f32(Tensor& t, const char* what) {
  DD_CHECK(t.defined() && t.is_cpu() && t.dtype() == DType::F32, what, ": the data-parallel CPU path needs a float32 ",
           "CPU tensor, got ", t.defined() ? describe(t) : std::string("an undefined tensor"));
  return t.data();
}

#ifdef DD_WITH_MPI
void mpi_check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  DD_CHECK(false, call, " failed: ", std::string(text, static_cast<std::size_t>(len)));
}
// MPI counts are int: a buffer beyond 2^31 - 1 floats goes in pieces.
constexpr int64_t kChunk = std::numeric_limits<int>::max() / 2;
#endif
}  // namespace

bool Comm::mpi_available() {
#ifdef DD_WITH_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Comm> Comm::init(const LaunchEnv& env) {
  auto c = std::make_unique<Comm>();
  c->local_rank_ = env.local_rank;
  const bool mpi_launcher = env.launcher == "openmpi" || env.launcher == "mpich";
  if (!env.distributed() && !mpi_launcher) return c;
  if (env.launcher == "torchrun") {
    // MPI cannot join processes that no MPI launcher started (each would be a singleton world of
    // 1): torchrun-style ranks meet at MASTER_ADDR:MASTER_PORT instead.
    c->tcp_ = std::make_unique<TcpGroup>(env.rank, env.world_size, env.master_addr, env.master_port,
                                         TcpGroup::timeout_from_env());
    c->rank_ = env.rank;
    c->world_ = env.world_size;
    return c;
  }
#ifdef DD_WITH_MPI
  // Slurm: srun --mpi=pmix gives MPI the job's ranks; a plain srun leaves each process a singleton,
  // which the world-size check below turns into an error.
  int inited = 0;
  mpi_check(MPI_Initialized(&inited), "MPI_Initialized");
  if (!inited) {
    mpi_check(MPI_Init(nullptr, nullptr), "MPI_Init");
    c->mpi_ = true;
  }
  c->mpi_in_use_ = true;
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &c->world_), "MPI_Comm_size");
  if (c->world_ != env.world_size || c->rank_ != env.rank)
    c->abort("MPI sees rank " + std::to_string(c->rank_) + " of " + std::to_string(c->world_) +
             " but the environment says " + env.describe() +
            ": a wrong world size or mixed launchers (under Slurm start the ranks with srun --mpi=pmix)");
  return c;
#else
  DD_CHECK(!env.distributed(), "launched as ", env.describe(), ", but this build has no MPI, which an MPI or ",
           "Slurm launch needs: install libopenmpi-dev openmpi-bin (scripts/install_deps.sh) and reconfigure, or ",
           "launch torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT: the TCP group)");
  return c;
#endif
}

Comm::~Comm() {
#ifdef DD_WITH_MPI
  if (mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
#endif
}

void Comm::allreduce_mean(Tensor& t) const {
  if (world_ == 1) return;  // before the check: a single CUDA run passes its device arena through here
  float* p = host_f32(t, "allreduce_mean");
  if (tcp_) return tcp_->allreduce_mean(p, t.numel());
#ifdef DD_WITH_MPI
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += kChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kChunk, n - i));
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, p + i, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
  // A multiply by 1/W, exact for a power of two; the same on every rank.
  const float inv = 1.0f / static_cast<float>(world_);
  for (int64_t i = 0; i < n; ++i) p[i] *= inv;
#else
  (void)p;  // unreachable: init() refuses world size > 1 without MPI or TCP
#endif
}

void Comm::broadcast_from_root(Tensor& t) const {
  if (world_ == 1) return;
  float* p = host_f32(t, "broadcast_from_root");
  if (tcp_) return tcp_->broadcast_from_root(p, t.numel());
#ifdef DD_WITH_MPI
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += kChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kChunk, n - i));
    mpi_check(MPI_Bcast(p + i, count, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
#else
  (void)p;  // unreachable: init() refuses world size > 1 without MPI
#endif
}

void Comm::broadcast_bytes(void* data, size_t bytes) const {
  if (world_ == 1 || bytes == 0) return;
  if (tcp_) return tcp_->broadcast_bytes(data, bytes);
#ifdef DD_WITH_MPI
  char* p = static_cast<char*>(data);
  for (size_t i = 0; i < bytes; i += static_cast<size_t>(kChunk)) {
    const int count = static_cast<int>(std::min<size_t>(static_cast<size_t>(kChunk), bytes - i));
    mpi_check(MPI_Bcast(p + i, count, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
#else
  (void)data;  // unreachable: init() refuses world size > 1 without MPI or TCP
#endif
}

void Comm::barrier() const {
  if (world_ == 1) return;
  if (tcp_) return tcp_->barrier();
#ifdef DD_WITH_MPI
  mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void Comm::abort(const std::string& message) const {
  std::fprintf(stderr, "error (rank %d of %d): %s\n", rank_, world_, message.c_str());
  std::fflush(stderr);
  if (tcp_) tcp_->close_all();
#ifdef DD_WITH_MPI
  int inited = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
  std::exit(1);
}

}  // namespace dd::dist

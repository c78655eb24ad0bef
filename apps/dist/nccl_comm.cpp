#include "apps/dist/nccl_comm.h"

#include "engine/error.h"

#ifdef DD_WITH_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <thread>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "engine/device_select.h"
#include "kernels/elementwise.h"
#endif

namespace dd::dist {

#ifndef DD_WITH_NCCL

bool nccl_built() { return false; }

struct NcclState {};

void require_nccl(int world_size) {
#ifdef DD_WITH_CUDA
  const char* lacking = "nccl.h and libnccl were not found under the CUDA toolkit or CMAKE_PREFIX_PATH";
#else
  const char* lacking = "it has no CUDA backend either";
#endif
  DD_FAIL("--device cuda with ", world_size, " rank(s) needs NCCL, which this build lacks (", lacking,
          "): install NCCL and reconfigure (CMake then says 'NCCL for data-parallel GPU training TRUE'), or "
          "train data-parallel with --device cpu");
}

NcclComm::NcclComm(const Comm& host, double) : rank_(host.rank()), world_(host.world_size()) { require_nccl(world_); }
NcclComm::~NcclComm() = default;
void NcclComm::allreduce_mean(Tensor&) const { DD_FAIL("NcclComm: built without NCCL"); }
void NcclComm::broadcast_from_root(Tensor&) const { DD_FAIL("NcclComm: built without NCCL"); }
void NcclComm::start_sum(Tensor&, int64_t, int64_t) { DD_FAIL("NcclComm: built without NCCL"); }
void NcclComm::finish_sums(Tensor&) { DD_FAIL("NcclComm: built without NCCL"); }

#else

bool nccl_built() { return true; }
void require_nccl(int) {}

struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t comm_stream = nullptr;   // the bucketed sums run here, beside the backward
  cudaEvent_t compute_mark = nullptr;   // "the gradients so far are final", recorded on the compute stream
  cudaEvent_t sums_done = nullptr;      // after the last bucket, recorded on the communication stream
  bool pending = false;                 // start_sum queued work that finish_sums has not waited for
};

namespace {
using clk = std::chrono::steady_clock;

[[noreturn]] void nccl_fail(const char* file, int line, const char* call, ncclResult_t r, ncclComm_t comm,
                            const std::string& who) {
  const char* last = ncclGetLastError(comm);
  throw_error(file, line, str_cat(who, ": ", call, " failed: ", ncclGetErrorString(r),
                                  last && *last ? str_cat(" (", last, ")") : std::string()));
}

// A non-blocking communicator's call may return ncclInProgress: the operation (the init's bootstrap
// with the other ranks, or a collective's first connection to its peers) goes on in NCCL's threads
// and the communicator's state says when it is done. Polled here against the deadline; false when
// the deadline passed first.
bool settle(ncclComm_t comm, ncclResult_t& r, double timeout_s) {
  const clk::time_point deadline =
      clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(timeout_s));
  for (int spins = 0; r == ncclInProgress; ++spins) {
    if (clk::now() > deadline) return false;
    // An enqueue settles in microseconds, an init in up to seconds: spin briefly, then sleep.
    if (spins < 1000) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const ncclResult_t q = ncclCommGetAsyncError(comm, &r);
    if (q != ncclSuccess) r = q;
  }
  return true;
}

std::string who(int rank, int world) { return str_cat("rank ", rank, " of ", world); }

float* device_f32(Tensor& t, const char* what) {
  DD_CHECK(t.defined() && t.device() == Device::CUDA && t.dtype() == DType::F32, what,
           ": the NCCL path needs a float32 CUDA tensor, got ", t.defined() ? describe(t) : std::string("an undefined tensor"));
  return t.data();
}
}  // namespace

// Every NCCL call on the communicator: an error throws naming the rank, the file, the line, the call
// and NCCL's reason; ncclInProgress is waited for (DD_DIST_TIMEOUT), and a timeout is an error too.
#define DD_NCCL_CHECK(call)                                                                                  \
  do {                                                                                                       \
    ncclResult_t dd_r_ = (call);                                                                             \
    if (!settle(s_->comm, dd_r_, timeout_s_))                                                                \
      ::dd::throw_error(__FILE__, __LINE__, str_cat(who(rank_, world_), ": ", #call, " did not complete within ", \
                                                    timeout_s_, " s (DD_DIST_TIMEOUT): a peer is missing or stuck")); \
    if (dd_r_ != ncclSuccess) nccl_fail(__FILE__, __LINE__, #call, dd_r_, s_->comm, who(rank_, world_));      \
  } while (0)

NcclComm::NcclComm(const Comm& host, double timeout_s)
    : rank_(host.rank()), world_(host.world_size()), timeout_s_(timeout_s), s_(std::make_unique<NcclState>()) {
  int count = 0;
  const cudaError_t probe = cudaGetDeviceCount(&count);
  DD_CHECK(probe == cudaSuccess && count > 0, who(rank_, world_), ": --device cuda but this process sees no GPU (",
           probe == cudaSuccess ? "no device" : cudaGetErrorString(probe), ")");
  const int local = host.local_rank();
  // A launcher that binds each rank to its GPU (Slurm's --gpus-per-task=1, a per-rank
  // CUDA_VISIBLE_DEVICES) leaves the process one visible GPU whatever its local rank.
  const bool bound = count == 1 && std::getenv("CUDA_VISIBLE_DEVICES") != nullptr;
  const int gpu = bound ? 0 : local;
  DD_CHECK(gpu < count, who(rank_, world_), ": local rank ", local, " but this node has ", count,
           " GPU(s): more ranks than GPUs on this node (one rank per GPU: start at most ", count, " per node)");
  select_default_device(gpu);

  ncclUniqueId id{};
  if (host.is_root()) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) nccl_fail(__FILE__, __LINE__, "ncclGetUniqueId(&id)", r, nullptr, who(rank_, world_));
  }
  host.broadcast_bytes(&id, sizeof id);  // the id's bytes as they are: no float round trip

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so a rank that cannot reach the others times out instead of hanging
  ncclResult_t r = ncclCommInitRankConfig(&s_->comm, world_, id, rank_, &config);
  const bool settled = !s_->comm || settle(s_->comm, r, timeout_s_);
  if (!settled || r != ncclSuccess) {
    const std::string last = ncclGetLastError(s_->comm);
    if (s_->comm) ncclCommAbort(s_->comm);
    s_->comm = nullptr;
    DD_FAIL(who(rank_, world_), " (GPU ", gpu, "): NCCL could not set up the communicator: ",
            !settled ? str_cat("no answer from the other ranks within ", timeout_s_, " s (DD_DIST_TIMEOUT)")
                     : str_cat("ncclCommInitRankConfig: ", ncclGetErrorString(r)),
            last.empty() ? "" : " (" + last + ")",
            "; NCCL_DEBUG=INFO shows which network and peer it tried");
  }
  DD_CUDA_CHECK(cudaStreamCreateWithFlags(&s_->comm_stream, cudaStreamNonBlocking));
  DD_CUDA_CHECK(cudaEventCreateWithFlags(&s_->compute_mark, cudaEventDisableTiming));
  DD_CUDA_CHECK(cudaEventCreateWithFlags(&s_->sums_done, cudaEventDisableTiming));
}

NcclComm::~NcclComm() {
  if (!s_) return;
  if (s_->comm) {
    // Unwinding from an error: a peer may be gone, and a finalize would wait for it.
    bool clean = std::uncaught_exceptions() == 0 && cudaStreamSynchronize(s_->comm_stream) == cudaSuccess;
    if (clean) {
      ncclResult_t r = ncclCommFinalize(s_->comm);
      clean = settle(s_->comm, r, timeout_s_) && r == ncclSuccess;
    }
    if (clean) {
      ncclCommDestroy(s_->comm);
    } else {
      ncclCommAbort(s_->comm);
    }
  }
  if (s_->sums_done) cudaEventDestroy(s_->sums_done);
  if (s_->compute_mark) cudaEventDestroy(s_->compute_mark);
  if (s_->comm_stream) cudaStreamDestroy(s_->comm_stream);
}

// ncclSum, then x 1/W on the same stream, rather than ncclAvg: NCCL's average of floats multiplies
// each rank's values by 1/W before the sum, which for a W that is not a power of two rounds W more
// times than the host path's sum-then-scale; with the sum the GPU mean is the host path's formula
// (for W = 2 the same bits: one commutative addition, then an exact halving). The order NCCL adds
// the ranks in is fixed for a given world size, topology, NCCL version and buffer size (its ring or
// tree), so a run reproduces, but for W > 2 the bits differ from the TCP star's rank-order sum.
void NcclComm::allreduce_mean(Tensor& t) const {
  float* p = device_f32(t, "NcclComm::allreduce_mean");
  DD_NCCL_CHECK(ncclAllReduce(p, p, static_cast<size_t>(t.numel()), ncclFloat32, ncclSum, s_->comm, cuda_stream()));
  if (world_ > 1) kernels::scale_(t, 1.0f / static_cast<float>(world_));
}

void NcclComm::broadcast_from_root(Tensor& t) const {
  float* p = device_f32(t, "NcclComm::broadcast_from_root");
  DD_NCCL_CHECK(ncclBroadcast(p, p, static_cast<size_t>(t.numel()), ncclFloat32, 0, s_->comm, cuda_stream()));
}

void NcclComm::start_sum(Tensor& t, int64_t begin, int64_t end) {
  float* p = device_f32(t, "NcclComm::start_sum");
  DD_CHECK(0 <= begin && begin <= end && end <= t.numel(), "NcclComm::start_sum: elements [", begin, ", ", end,
           ") of ", describe(t));
  // The communication stream starts after what the compute stream has queued so far (the backward
  // closures that finished this bucket's gradients).
  DD_CUDA_CHECK(cudaEventRecord(s_->compute_mark, cuda_stream()));
  DD_CUDA_CHECK(cudaStreamWaitEvent(s_->comm_stream, s_->compute_mark, 0));
  DD_NCCL_CHECK(ncclAllReduce(p + begin, p + begin, static_cast<size_t>(end - begin), ncclFloat32, ncclSum, s_->comm,
                              s_->comm_stream));
  s_->pending = true;
}

void NcclComm::finish_sums(Tensor& t) {
  device_f32(t, "NcclComm::finish_sums");
  if (s_->pending) {
    DD_CUDA_CHECK(cudaEventRecord(s_->sums_done, s_->comm_stream));
    DD_CUDA_CHECK(cudaStreamWaitEvent(cuda_stream(), s_->sums_done, 0));
    s_->pending = false;
  }
  if (world_ > 1) kernels::scale_(t, 1.0f / static_cast<float>(world_));
}

#endif  // DD_WITH_NCCL

}  // namespace dd::dist

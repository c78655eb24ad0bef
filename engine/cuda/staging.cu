// Host-to-device copies through pinned staging buffers.
//
// cudaMemcpyAsync from pageable memory is not asynchronous: the driver copies the source into its own
// pinned buffer while the host waits, and on some systems it waits for the stream too. Every upload
// of a training step (the batch, the timesteps, the schedule's coefficients) therefore goes through
// a small ring of pinned buffers: the host copies the source into the next slot (so the caller may
// reuse its buffer at once, as before), queues the DMA on the engine's stream and records an event;
// the slot is reused only after that event, i.e. after the DMA has read it.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "engine/cuda_check.h"
#include "engine/cuda_stream.h"
#include "engine/device.h"

namespace dd::cuda_mem {

namespace {
class PinnedStaging {
 public:
  // Above this a copy goes pageable: such copies (whole checkpoints) are rare and not on the step's
  // path, and pinning that much host memory would take it from everyone else.
  static constexpr std::size_t kMaxStaged = std::size_t(64) << 20;

  // True when the copy was queued through a pinned slot; false when the caller must copy pageable.
  bool copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes > kMaxStaged) return false;
    std::lock_guard<std::mutex> lock(mu_);
    if (disabled_) return false;
    Slot& s = slots_[next_];
    next_ = (next_ + 1) % kSlots;
    if (s.pending) DD_CUDA_CHECK(cudaEventSynchronize(s.done));  // its last DMA has read it
    s.pending = false;
    if (s.capacity < bytes && !grow(s, bytes)) return false;
    if (!s.done) DD_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    std::memcpy(s.host, src, bytes);
    DD_CUDA_CHECK(cudaMemcpyAsync(dst, s.host, bytes, cudaMemcpyHostToDevice, cuda_stream()));
    DD_CUDA_CHECK(cudaEventRecord(s.done, cuda_stream()));
    s.pending = true;
    return true;
  }

 private:
  struct Slot {
    void* host = nullptr;
    std::size_t capacity = 0;
    cudaEvent_t done = nullptr;
    bool pending = false;
  };
  // More slots than a step has uploads, so reusing one waits on a DMA queued a step ago.
  static constexpr int kSlots = 8;

  bool grow(Slot& s, std::size_t bytes) {
    if (s.host) DD_CUDA_CHECK(cudaFreeHost(s.host));
    s.host = nullptr;
    s.capacity = 0;
    std::size_t cap = 64 << 10;
    while (cap < bytes) cap *= 2;
    const cudaError_t err = cudaHostAlloc(&s.host, std::min(cap, kMaxStaged), cudaHostAllocDefault);
    if (err != cudaSuccess) {
      // Pinned memory is a limited resource (a container's memlock limit, say): copies still work,
      // only synchronously, so say so once instead of failing the run.
      cudaGetLastError();
      s.host = nullptr;
      disabled_ = true;
      std::fprintf(stderr, "warning: cudaHostAlloc(%zu bytes) failed (%s: %s); host-to-device copies go "
                   "through pageable memory and are not asynchronous\n", cap, cudaGetErrorName(err),
                   cudaGetErrorString(err));
      return false;
    }
    s.capacity = std::min(cap, kMaxStaged);
    return true;
  }

  std::mutex mu_;
  Slot slots_[kSlots];
  int next_ = 0;
  bool disabled_ = false;
};

PinnedStaging& staging() {
  // Never destroyed, like the allocator: freeing pinned memory after the runtime shut down fails.
  static PinnedStaging* s = new PinnedStaging();
  return *s;
}
}  // namespace

bool copy_h2d_staged(void* dst, const void* src, std::size_t bytes) { return staging().copy(dst, src, bytes); }

}  // namespace dd::cuda_mem

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <unistd.h>

#include "engine/cuda_check.h"
#include "engine/context.h"
#include "engine/cuda_stream.h"
#include "engine/device.h"

namespace dd {

bool cuda_available() {
  // Probed once: the answer cannot change within a process, and the apps and tests ask often.
  static const bool available = [] {
    CudaProbe p;
    const cudaError_t err = cudaGetDeviceCount(&p.device_count);
    cudaGetLastError();  // the probe's error is reported below, never left for a later check
    p.ok = err == cudaSuccess;
    p.no_device = err == cudaErrorNoDevice;
    p.insufficient_driver = err == cudaErrorInsufficientDriver;
    if (!p.ok) p.error = str_cat(cudaGetErrorName(err), ": ", cudaGetErrorString(err));
    if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess) p.driver_version = 0;
    if (cudaRuntimeGetVersion(&p.runtime_version) != cudaSuccess) p.runtime_version = 0;
    p.device_node = access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;
    return cuda_probe_verdict(p);
  }();
  return available;
}

namespace cuda_mem {

namespace {
// Counters of what crosses between host and device (cuda_mem::stats()).
std::atomic<long long> g_h2d_staged{0}, g_h2d_pageable{0}, g_d2h_copies{0}, g_host_syncs{0}, g_launches{0};

// Host work that would leave the device inside a captured CUDA graph throws, naming what it was.
void check_not_capturing(const char* what) {
  DD_CHECK(!current_context().capturing(), what, " inside a captured CUDA graph: a graph replays device work only, "
           "so this would be recorded once and then read stale memory (or the host would wait on a stream "
           "that is being captured); do it before the capture or after the replay");
}

// Exact-size free lists. A training step asks for the same sizes every step,
// so after the first step every request is a hit and cudaMalloc (which
// synchronizes the device) never runs inside the loop.
class CachingAllocator {
 public:
  // DD_CUDA_NO_CACHE=1: every tensor gets its own exact-size cudaMalloc and is
  // cudaFree'd when released, so compute-sanitizer's memcheck sees each
  // tensor's true bounds (a cached block's rounding slack would hide an overrun).
  CachingAllocator() {
    const char* env = std::getenv("DD_CUDA_NO_CACHE");
    no_cache_ = env && *env && std::string(env) != "0";
  }

  void* alloc(std::size_t bytes, int pool) {
    const std::size_t size = no_cache_ ? bytes : round_up(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto& lists = free_[pool];
    auto it = lists.find(size);
    if (it != lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cached -= size;
      return hand_out(p, size, pool);
    }
    // A capture must not wait on the stream it is recording, so it never frees the cache to retry.
    const bool capturing = current_context().capturing();
    void* p = nullptr;
    cudaError_t err;
    if (capturing) {
      // cudaMalloc is not a stream operation, so a capture does not record it; in the capture's own
      // (thread-local) mode it counts as unsafe and would invalidate the capture. The block is
      // meant to outlive the capture (the graph's private pool), so it is safe: relax for this call.
      cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
      DD_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
      err = cudaMalloc(&p, size);
      DD_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    } else {
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation && !capturing) {
      cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      throw_error(__FILE__, __LINE__,
                  str_cat("cudaMalloc(", size, " bytes) failed: ", cudaGetErrorName(err), ": ",
                          cudaGetErrorString(err), " (in use ", stats_.in_use, " bytes, cached ", stats_.cached,
                          " bytes)"));
    }
    ++stats_.device_mallocs;
    stats_.reserved += size;
    return hand_out(p, size, pool);
  }

  void free(void* p) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: nothing sane to do in a destructor
    const std::size_t size = it->second.size;
    // A block of a released pool (its graph is gone) goes back to the general pool.
    const int pool = released_.count(it->second.pool) ? 0 : it->second.pool;
    live_.erase(it);
    stats_.in_use -= size;
    if (no_cache_ && pool == 0 && !current_context().capturing()) {  // cudaFree would end a capture
      stats_.reserved -= size;
      cudaFree(p);  // synchronizes the device: queued kernels finish first
      return;
    }
    // Private pools keep their blocks even without the cache: a graph's addresses must stay valid.
    stats_.cached += size;
    free_[pool][size].push_back(p);
  }

  int create_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    return next_pool_++;
  }
  // The pool's cached blocks join the general pool; its live blocks follow when freed. The caller
  // has destroyed the graph that replayed from them, and every later use is ordered after its
  // replays on the stream.
  void release_pool(int pool) {
    if (pool == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    released_.insert(pool);
    auto it = free_.find(pool);
    if (it == free_.end()) return;
    for (auto& [size, ptrs] : it->second) {
      auto& dst = free_[0][size];
      dst.insert(dst.end(), ptrs.begin(), ptrs.end());
    }
    free_.erase(it);
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_in_use = stats_.in_use;
  }
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

 private:
  static std::size_t round_up(std::size_t bytes) {
    constexpr std::size_t kSmall = 512, kLarge = 128 << 10;  // waste <= 1/8 above 1 MiB
    const std::size_t q = bytes < (std::size_t(1) << 20) ? kSmall : kLarge;
    return (bytes + q - 1) / q * q;
  }
  void* hand_out(void* p, std::size_t size, int pool) {
    live_[p] = Block{size, pool};
    stats_.in_use += size;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    return p;
  }
  void release_cached_locked() {
    if (stats_.cached == 0) return;  // nothing to give back (and maybe no device to ask)
    // Blocks may still be read by queued kernels: drain the stream first. Only the general pool's
    // blocks go: a private pool's belong to a live graph.
    ++g_host_syncs;
    DD_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    auto& general = free_[0];
    for (auto& [size, ptrs] : general) {
      for (void* p : ptrs) DD_CUDA_CHECK(cudaFree(p));
      stats_.reserved -= size * ptrs.size();
      stats_.cached -= size * ptrs.size();
    }
    general.clear();
  }

  struct Block {
    std::size_t size;
    int pool;
  };
  std::mutex mu_;
  // pool -> size -> free blocks (exact sizes; pool 0 is the general pool).
  std::unordered_map<int, std::unordered_map<std::size_t, std::vector<void*>>> free_;
  std::unordered_map<void*, Block> live_;
  std::unordered_set<int> released_;
  int next_pool_ = 1;
  Stats stats_;
  bool no_cache_ = false;
};

CachingAllocator& allocator() {
  // Never destroyed: at exit the driver reclaims device memory, and freeing
  // after the CUDA runtime has shut down would fail.
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}
}  // namespace

void* alloc(std::size_t bytes) { return alloc_in_pool(bytes, current_context().pool()); }
void* alloc_in_pool(std::size_t bytes, int pool) {
  if (bytes == 0) return nullptr;
  return allocator().alloc(bytes, pool);
}
int create_pool() { return allocator().create_pool(); }
void release_pool(int pool) { allocator().release_pool(pool); }
PoolScope::PoolScope(int pool) : prev_(current_context().pool()) { current_context().set_pool(pool); }
PoolScope::~PoolScope() { current_context().set_pool(prev_); }
void count_launch() noexcept { ++g_launches; }
void free(void* p) noexcept {
  if (p) allocator().free(p);
}
Stats stats() {
  Stats s = allocator().stats();
  s.h2d_staged = g_h2d_staged.load();
  s.h2d_pageable = g_h2d_pageable.load();
  s.d2h_copies = g_d2h_copies.load();
  s.host_syncs = g_host_syncs.load();
  s.launches = g_launches.load();
  return s;
}
void reset_peak() { allocator().reset_peak(); }
void empty_cache() {
  check_not_capturing("empty_cache");
  allocator().empty_cache();
}

// Through a pinned staging slot (engine/cuda/staging.cu) so the DMA is asynchronous; the source is
// copied out before this returns either way, so the caller may reuse it at once.
void copy_h2d(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  check_not_capturing("a host-to-device copy");
  if (copy_h2d_staged(dst, src, bytes)) {
    ++g_h2d_staged;
    return;
  }
  DD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream()));
  ++g_h2d_pageable;
}
void copy_d2h(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  check_not_capturing("a device-to-host copy");
  ++g_d2h_copies;
  ++g_host_syncs;
  DD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
  DD_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}
void copy_d2d(void* dst, const void* src, std::size_t bytes) {
  if (bytes) DD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
}
void memset(void* dst, int value, std::size_t bytes) {
  if (bytes) DD_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, cuda_stream()));
}
namespace {
__global__ void fill_kernel(float* dst, float value, std::size_t count) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}
}  // namespace
void fill_f32(float* dst, float value, std::size_t count) {
  if (!count) return;
  unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((count + 255) / 256, 65535));
  fill_kernel<<<blocks, 256, 0, cuda_stream()>>>(dst, value, count);
  DD_CUDA_LAUNCH_CHECK("fill_kernel");
}

namespace {
struct SmallBytes {
  unsigned char b[kWriteSmallMax];
};
__global__ void write_small_kernel(unsigned char* dst, SmallBytes src, unsigned bytes) {
  for (unsigned i = threadIdx.x; i < bytes; i += blockDim.x) dst[i] = src.b[i];
}
}  // namespace
void write_small(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  DD_CHECK(bytes <= kWriteSmallMax, "write_small: ", bytes, " bytes is more than the ", kWriteSmallMax,
           " a kernel argument carries");
  SmallBytes v;
  std::memcpy(v.b, src, bytes);
  write_small_kernel<<<1, 64, 0, cuda_stream()>>>(static_cast<unsigned char*>(dst), v, static_cast<unsigned>(bytes));
  DD_CUDA_LAUNCH_CHECK("write_small_kernel");
}
void synchronize() {
  check_not_capturing("a stream synchronization");
  ++g_host_syncs;
  DD_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  DD_CUDA_CHECK(cudaGetLastError());
}
float time_ms(const std::function<void()>& f) {
  check_not_capturing("timing device work");
  cudaEvent_t ev[2] = {nullptr, nullptr};
  DD_CUDA_CHECK(cudaEventCreate(&ev[0]));
  // The events are destroyed however f ends.
  struct Destroy {
    cudaEvent_t* e;
    ~Destroy() {
      for (int i = 0; i < 2; ++i)
        if (e[i]) cudaEventDestroy(e[i]);
    }
  } destroy{ev};
  DD_CUDA_CHECK(cudaEventCreate(&ev[1]));
  DD_CUDA_CHECK(cudaEventRecord(ev[0], cuda_stream()));
  f();
  DD_CUDA_CHECK(cudaEventRecord(ev[1], cuda_stream()));
  ++g_host_syncs;
  DD_CUDA_CHECK(cudaEventSynchronize(ev[1]));
  float ms = 0;
  DD_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[0], ev[1]));
  return ms;
}
}  // namespace cuda_mem

}  // namespace dd

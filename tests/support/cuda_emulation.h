#pragma once
// A host emulation of the small CUDA subset the attention kernels use, so their
// device code (kernels/cuda/*_kernels.cuh) runs in the CPU test binary on
// machines without a GPU. Include this before such a header, in a .cpp only.
//
// Each block's threads are real std::threads meeting at a barrier for every
// __syncthreads(); blocks run one after another, so `__shared__` can be a
// function-local static (one copy per kernel instantiation, shared by the
// block's threads). A __syncthreads() that not every thread of a block reaches
// shows up as a barrier timeout, which aborts the test with a message.
// Not emulated: warps, shuffles, atomics, dynamic shared memory.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace dd_emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct ThreadCtx {
  Dim3 thread_idx, block_idx, block_dim, grid_dim;
};

inline ThreadCtx& ctx() {
  static thread_local ThreadCtx c;
  return c;
}

class Barrier {
 public:
  explicit Barrier(unsigned count) : count_(count) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const unsigned long long gen = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(lock, std::chrono::seconds(60), [&] { return generation_ != gen; })) {
      std::fprintf(stderr, "cuda_emulation: __syncthreads() not reached by every thread of the block\n");
      std::abort();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned count_, arrived_ = 0;
  unsigned long long generation_ = 0;
};

inline Barrier*& current_barrier() {
  static Barrier* b = nullptr;
  return b;
}

inline void syncthreads() { current_barrier()->wait(); }

// kernel<<<grid, block>>>(args...) on a 1-D grid of 1-D blocks.
template <class... P, class... A>
void launch(void (*kernel)(P...), unsigned grid, unsigned block, const A&... args) {
  for (unsigned bx = 0; bx < grid; ++bx) {
    Barrier bar(block);
    current_barrier() = &bar;
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([&, t, bx] {
        ThreadCtx& c = ctx();
        c.thread_idx = {t, 0, 0};
        c.block_idx = {bx, 0, 0};
        c.block_dim = {block, 1, 1};
        c.grid_dim = {grid, 1, 1};
        kernel(args...);
      });
    for (std::thread& th : threads) th.join();
    current_barrier() = nullptr;
  }
}

}  // namespace dd_emu

#define DD_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __syncthreads() ::dd_emu::syncthreads()
#define threadIdx (::dd_emu::ctx().thread_idx)
#define blockIdx (::dd_emu::ctx().block_idx)
#define blockDim (::dd_emu::ctx().block_dim)
#define gridDim (::dd_emu::ctx().grid_dim)

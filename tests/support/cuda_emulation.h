#pragma once
// The one host emulation of CUDA kernels in this repository: CUDA device code
// compiled by the host compiler runs on the CPU, so kernels are tested on
// machines without a GPU. Used by tests/test_attention_cuda_emulation.cpp (the
// attention kernels' headers) and by tests/emu/ (whole kernels/cuda/*.cu files,
// rewritten at build time; see tests/emu/README.md).
//
// Execution model. A launch runs its blocks one after another (in reverse
// order, so a kernel that assumes block 0 runs first fails). Each CUDA thread of
// a block is a fiber (ucontext) on the calling OS thread; the scheduler runs
// every fiber until it reaches __syncthreads() or returns, then releases the
// barrier once every thread of the block waits at it. So:
//  - the schedule is deterministic and the worst case for a missing barrier:
//    thread 0 runs its whole phase (and the next one, if no barrier stops it)
//    before thread 1 starts, so shared memory read too early holds stale data;
//  - a __syncthreads() that some threads of the block skip (divergent barrier)
//    is found exactly: some threads wait while the others have returned. The
//    launch then throws std::runtime_error naming the kernel's launch shape;
//    nothing can deadlock, so no timeout is needed;
//  - `__shared__` becomes a function-local static (one copy per kernel
//    instantiation), valid because blocks never overlap in time;
//  - a 512-thread block costs 512 small stacks, not 512 OS threads.
// Not emulated (a kernel using them does not compile against this header, and
// tests/emu/rewrite.cmake names them before that): warp shuffles and votes,
// atomics, dynamic (extern) shared memory, cooperative groups, streams/events.
#include <ucontext.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<cuda_runtime.h>)
// The toolkit's dim3, uint3, float4, int4, make_float4, ... (host-usable structs).
#include <cuda_runtime.h>
#define DD_EMU_HAVE_CUDA_TYPES 1
#endif

namespace dd_emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  Dim3() = default;
  Dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
#ifdef DD_EMU_HAVE_CUDA_TYPES
  Dim3(const dim3& d) : x(d.x), y(d.y), z(d.z) {}
  operator dim3() const { return dim3(x, y, z); }
#endif
  unsigned count() const { return x * y * z; }
};

struct ThreadCtx {
  Dim3 thread_idx, block_idx, block_dim, grid_dim;
};

namespace detail {

constexpr std::size_t kStackBytes = 256 * 1024;  // kernels keep small register arrays only

enum class State { Ready, AtBarrier, Done };

struct Fiber {
  ucontext_t uc{};
  std::unique_ptr<char[]> stack;  // not zeroed: only touched pages cost memory
  State state = State::Ready;
  ThreadCtx ctx;
};

struct Scheduler {
  ucontext_t main{};
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  std::exception_ptr error;  // the first exception a thread of the launch threw
  bool active = false;
};

inline Scheduler& sched() {
  static Scheduler s;
  return s;
}

inline void trampoline() {
  Scheduler& s = sched();
  try {
    (*s.body)();
  } catch (...) {
    if (!s.error) s.error = std::current_exception();
  }
  s.current->state = State::Done;
  swapcontext(&s.current->uc, &s.main);  // never resumed
}

inline std::string shape_str(const Dim3& g, const Dim3& b) {
  return "<<<(" + std::to_string(g.x) + "," + std::to_string(g.y) + "," + std::to_string(g.z) + "), (" +
         std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) + ")>>>";
}

// Runs body once per thread of every block of the grid.
inline void run_grid(const Dim3& grid, const Dim3& block, const std::function<void()>& body) {
  Scheduler& s = sched();
  if (s.active) throw std::runtime_error("cuda_emulation: a kernel launched another kernel");
  const unsigned nt = block.count();
  if (nt == 0 || nt > 1024 || grid.count() == 0)
    throw std::runtime_error("cuda_emulation: invalid launch configuration " + shape_str(grid, block));
  if (grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error("cuda_emulation: grid y/z above 65535 in " + shape_str(grid, block));
  if (s.fibers.size() < nt) s.fibers.resize(nt);
  s.body = &body;
  s.active = true;
  struct Reset {
    Scheduler& s;
    ~Reset() {
      s.active = false;
      s.current = nullptr;
      s.body = nullptr;
      s.error = nullptr;
    }
  } reset{s};
  const uint64_t blocks = uint64_t(grid.count());
  for (uint64_t rb = blocks; rb-- > 0;) {
    const Dim3 bidx(unsigned(rb % grid.x), unsigned(rb / grid.x % grid.y), unsigned(rb / grid.x / grid.y));
    for (unsigned t = 0; t < nt; ++t) {
      Fiber& f = s.fibers[t];
      if (!f.stack) f.stack.reset(new char[kStackBytes]);
      f.state = State::Ready;
      f.ctx = {Dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y)), bidx, block, grid};
      getcontext(&f.uc);
      f.uc.uc_stack.ss_sp = f.stack.get();
      f.uc.uc_stack.ss_size = kStackBytes;
      f.uc.uc_link = nullptr;
      makecontext(&f.uc, trampoline, 0);
    }
    for (;;) {
      unsigned waiting = 0, done = 0;
      for (unsigned t = 0; t < nt; ++t) {
        Fiber& f = s.fibers[t];
        if (f.state == State::Ready) {
          s.current = &f;
          swapcontext(&s.main, &f.uc);
        }
        (f.state == State::Done ? done : waiting) += 1;
      }
      if (s.error) std::rethrow_exception(std::exchange(s.error, nullptr));
      if (done == nt) break;
      if (waiting != nt)
        throw std::runtime_error("cuda_emulation: __syncthreads() not reached by every thread of the block: " +
                                 std::to_string(waiting) + " of " + std::to_string(nt) +
                                 " threads wait at a barrier that the others never reach, in block (" +
                                 std::to_string(bidx.x) + "," + std::to_string(bidx.y) + "," +
                                 std::to_string(bidx.z) + ") of " + shape_str(grid, block));
      for (unsigned t = 0; t < nt; ++t) s.fibers[t].state = State::Ready;
    }
  }
}

}  // namespace detail

// The calling CUDA thread's indices.
inline ThreadCtx& ctx() {
  detail::Scheduler& s = detail::sched();
  if (!s.current) {
    std::fprintf(stderr, "cuda_emulation: threadIdx/blockIdx read outside a kernel\n");
    std::abort();
  }
  return s.current->ctx;
}

inline void syncthreads() {
  detail::Scheduler& s = detail::sched();
  if (!s.current) {
    std::fprintf(stderr, "cuda_emulation: __syncthreads() outside a kernel\n");
    std::abort();
  }
  detail::Fiber* f = s.current;
  f->state = detail::State::AtBarrier;
  swapcontext(&f->uc, &s.main);
}

// kernel<<<grid, block>>>(args...): grid and block are integers or dim3.
template <class... P, class... A>
void launch(void (*kernel)(P...), Dim3 grid, Dim3 block, const A&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "cuda_emulation: kernel argument count");
  const std::function<void()> body = [&] { kernel(args...); };
  detail::run_grid(grid, block, body);
}

// What tests/emu/rewrite.cmake turns `kernel<<<grid, block, smem, stream>>>(args)`
// into: `::dd_emu::Launch(grid, block, smem, stream).run(kernel, args)`.
struct Launch {
  Dim3 grid, block;
  template <class S = std::nullptr_t>
  Launch(Dim3 g, Dim3 b, std::size_t smem = 0, S = nullptr) : grid(g), block(b) {
    if (smem != 0) throw std::runtime_error("cuda_emulation: dynamic shared memory is not emulated");
  }
  template <class... P, class... A>
  void run(void (*kernel)(P...), const A&... args) const {
    launch(kernel, grid, block, args...);
  }
};

// Device intrinsics our kernels use, with their host meaning. The _rn forms are
// single IEEE operations in round-to-nearest; on the host (SSE, no FMA
// contraction: -ffp-contract=off for the emulated sources) so are a*b, a+b.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }

// CUDA's global min/max overloads for mixed integer and floating types.
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  using T = std::common_type_t<A, B>;
  return T(a) < T(b) ? T(a) : T(b);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  using T = std::common_type_t<A, B>;
  return T(a) < T(b) ? T(b) : T(a);
}

}  // namespace dd_emu

using dd_emu::__dadd_rn;
using dd_emu::__ddiv_rn;
using dd_emu::__dmul_rn;
using dd_emu::__dsub_rn;
using dd_emu::__fadd_rn;
using dd_emu::__fdiv_rn;
using dd_emu::__fmul_rn;
using dd_emu::__fsub_rn;
using dd_emu::max;
using dd_emu::min;
using dd_emu::rsqrt;
using dd_emu::rsqrtf;

#define DD_CUDA_EMULATION 1
// cuda_runtime.h defines these as attributes the host compiler ignores (with a
// warning); the emulation wants them empty.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() ::dd_emu::syncthreads()
#define threadIdx (::dd_emu::ctx().thread_idx)
#define blockIdx (::dd_emu::ctx().block_idx)
#define blockDim (::dd_emu::ctx().block_dim)
#define gridDim (::dd_emu::ctx().grid_dim)

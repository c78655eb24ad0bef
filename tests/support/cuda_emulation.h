#pragma once
// The one host emulation of CUDA kernels in this repository: CUDA device code
// compiled by the host compiler runs on the CPU, so kernels are tested on
// machines without a GPU. Used by tests/test_attention_cuda_emulation.cpp (the
// attention kernels' headers) and by tests/emu/ (whole kernels/cuda/*.cu files,
// rewritten at build time; see tests/emu/README.md).
//
// Execution model. A launch runs its blocks one after another (in reverse
// order, so a kernel that assumes block 0 runs first fails; the reverse
// schedule below runs them from block 0 instead). Each CUDA thread of
// a block is a fiber (ucontext) on the calling OS thread; the scheduler runs
// every fiber until it reaches __syncthreads(), a warp collective, or returns.
// So:
//  - the schedule is deterministic and the worst case for a missing barrier:
//    thread 0 runs its whole phase (and the next one, if no barrier stops it)
//    before thread 1 starts, so shared memory read too early holds stale data.
//    That order hides the converse race (thread 0 writes, thread 5 reads with
//    no barrier between: a broadcast), so a second order runs threads from the
//    last to the first (DD_EMU_SCHEDULE=reverse, or set_schedule): of any two
//    threads that touch the same bytes between barriers, one order runs the
//    reader first. It also runs the blocks from the first to the last, so a
//    kernel that assumes either block order fails in one of the two. ctest
//    runs the emulated kernels under both;
//  - a __syncthreads() that some threads of the block skip (divergent barrier)
//    is found exactly: some threads wait while the others have returned. The
//    launch then throws std::runtime_error naming the kernel's launch shape;
//    nothing can deadlock, so no timeout is needed;
//  - warp collectives (shuffles, votes, __syncwarp, ldmatrix, mma.sync; see
//    cuda_emulation_warp.h) are rendezvous: each lane (threadIdx linearized,
//    32 to a warp) leaves its operands and waits until every lane of the mask
//    is at the same collective (same operation, call site, mask, and count of
//    earlier collectives with that mask). A collective that cannot complete
//    because a lane is elsewhere (another collective, __syncthreads, returned)
//    is reported as warp divergence, naming the warp and where each lane is;
//  - `__shared__` becomes a function-local static (one copy per kernel
//    instantiation), valid because blocks never overlap in time. Arrays that
//    tests/emu/rewrite.cmake saw are registered (register_shared), so ldmatrix
//    and cp.async can check that an address lies inside one. A registered
//    array is filled with 0xFF bytes (NaN) when registered and before each
//    block of the kernel that registered it, as the hardware leaves shared
//    memory undefined at a block's start: a block that reads before it writes
//    reads NaN, not the previous block's values;
//  - `extern __shared__` (rewritten by tests/emu/rewrite.cmake) is one buffer
//    per launch, sized by the launch's third <<<>>> argument and refilled with
//    0xFF bytes (NaN) before each block; above 48 KB a launch needs
//    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize);
//  - cp.async copies land only at the cp.async.wait_group that retires their
//    group (cuda_emulation_memory.h): until then the destination holds NaN;
//  - a 512-thread block costs 512 small stacks, not 512 OS threads.
// Not emulated (a kernel using them does not compile against this header, and
// tests/emu/rewrite.cmake names them before that): atomics, __activemask,
// cooperative groups, raw inline PTX outside kernels/cuda/warp_ops.cuh,
// streams/events, memory fences.
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <map>
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

// Where a call was written: a default argument `Site s = Site::here()` takes the
// caller's file and line (after #line, the .cu line of a rewritten file).
struct Site {
  const char* file = "?";
  int line = 0;
  static constexpr Site here(const char* f = __builtin_FILE(), int l = __builtin_LINE()) { return {f, l}; }
  std::string str() const { return std::string(file) + ":" + std::to_string(line); }
  bool operator==(const Site& o) const { return line == o.line && std::strcmp(file, o.file) == 0; }
};

// The order in which the runnable threads of a block run (see the top of this file).
enum class Schedule { Forward, Reverse };

namespace detail {

constexpr std::size_t kStackBytes = 256 * 1024;  // kernels keep small register arrays only
constexpr unsigned kWarpSize = 32;
constexpr std::size_t kSmemDefaultMax = 48 * 1024;  // dynamic shared memory without opting in
constexpr std::size_t kSmemOptInMax = 227 * 1024;   // sm_90's cudaDevAttrMaxSharedMemoryPerBlockOptin
constexpr unsigned kMaxUnboundedThreads = 256;        // 65536 registers / 255 a thread

enum class State { Ready, AtBarrier, AtWarp, Done };

enum class WarpOp { ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, SyncWarp, Ldmatrix, Mma };

// One lane's part in a warp collective. It lives on the lane's own stack while
// the lane waits, so the lane completing the collective reads every lane's `in`
// and writes every lane's `out` directly.
struct WarpCall;
using WarpExec = void (*)(WarpCall* const* lanes, uint32_t participants);
struct WarpCall {
  WarpOp op;
  unsigned variant = 0;  // ldmatrix .x1/.x2/.x4 and .trans, mma type: must match across lanes
  uint32_t mask = 0;
  Site site;
  uint32_t seq = 0;  // how many collectives with this mask the lane completed before
  const char* what = "";  // the instruction, for messages
  const void* in = nullptr;
  void* out = nullptr;
  WarpExec exec = nullptr;
};

// A cp.async in flight: the bytes were read at issue (global memory does not
// change under a running kernel here) and land at the wait that retires them.
struct AsyncCopy {
  unsigned char* dst;
  unsigned char bytes[16];
};

struct Fiber {
  ucontext_t uc{};
  std::unique_ptr<char[]> stack;  // not zeroed: only touched pages cost memory
  State state = State::Ready;
  ThreadCtx ctx;
  unsigned index = 0;  // linear thread index in the block: warp index / 32, lane % 32
  Site barrier_site;
  WarpCall* call = nullptr;
  std::vector<std::pair<uint32_t, uint32_t>> seq;  // per mask: collectives completed
  std::vector<AsyncCopy> uncommitted;
  std::deque<std::vector<AsyncCopy>> groups;  // committed cp.async groups, oldest first
};

struct Scheduler {
  ucontext_t main{};
  std::vector<Fiber> fibers;
  unsigned nthreads = 0;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  std::exception_ptr error;  // the first exception a thread of the launch threw
  bool active = false;
  const char* kernel = "kernel";
  const void* kernel_key = nullptr;  // the kernel function: which static __shared__ arrays are its own
  bool bounds_declared = false;      // the kernel's __launch_bounds__ ran (check_launch_bounds)
  Dim3 grid, block, block_idx;
  std::vector<unsigned char> dyn_storage;  // the launch's extern __shared__ buffer
  unsigned char* dyn_base = nullptr;
  std::size_t dyn_bytes = 0;
};

inline Scheduler& sched() {
  static Scheduler s;
  return s;
}

inline Schedule schedule_from_env() {
  const char* v = std::getenv("DD_EMU_SCHEDULE");
  if (!v || !*v || std::strcmp(v, "forward") == 0) return Schedule::Forward;
  if (std::strcmp(v, "reverse") == 0) return Schedule::Reverse;
  std::fprintf(stderr, "cuda_emulation: DD_EMU_SCHEDULE=%s: expected forward or reverse\n", v);
  std::exit(2);
}

inline Schedule& schedule() {
  static Schedule s = schedule_from_env();
  return s;
}

// The static __shared__ arrays each kernel registered: poisoned before each of its blocks.
inline std::map<const void*, std::vector<std::pair<void*, std::size_t>>>& kernel_shared() {
  static std::map<const void*, std::vector<std::pair<void*, std::size_t>>> m;
  return m;
}

// cudaFuncAttributeMaxDynamicSharedMemorySize per kernel, as cudaFuncSetAttribute set it.
inline std::map<const void*, int>& max_dynamic_smem() {
  static std::map<const void*, int> m;
  return m;
}

// The device's rule for a block's shared memory, static and dynamic together: within 48 KB unless
// the kernel opted in with cudaFuncAttributeMaxDynamicSharedMemorySize, within 227 KB after. The
// static part is what the kernel registered so far (all of it after its first block).
inline void check_smem_total(const void* key, const char* kernel, std::size_t dyn) {
  const auto own = kernel_shared().find(key);
  if (own == kernel_shared().end()) return;
  std::size_t stat = 0;
  for (const auto& a : own->second) stat += a.second;
  const bool opted_in = max_dynamic_smem().count(key) != 0;
  const std::size_t limit = opted_in ? kSmemOptInMax : kSmemDefaultMax;
  if (stat + dyn > limit)
    throw std::runtime_error("cuda_emulation: " + std::string(kernel) + " has " + std::to_string(stat) +
                             " bytes of static __shared__ and " + std::to_string(dyn) +
                             " of dynamic: more than the " + std::to_string(limit) + " a block can have" +
                             (opted_in ? "" : " without cudaFuncSetAttribute(MaxDynamicSharedMemorySize)"));
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

inline std::string dim_str(const Dim3& d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}
inline std::string shape_str(const Dim3& g, const Dim3& b) { return "<<<" + dim_str(g) + ", " + dim_str(b) + ">>>"; }
inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

inline std::string launch_str() {
  const Scheduler& s = sched();
  return std::string(s.kernel) + shape_str(s.grid, s.block) + " block " + dim_str(s.block_idx);
}

// The calling CUDA thread, for messages: kernel, block, thread, warp and lane.
inline std::string where() {
  const Scheduler& s = sched();
  if (!s.current) return "outside a kernel";
  const unsigned t = s.current->index;
  return launch_str() + " thread " + dim_str(s.current->ctx.thread_idx) + " (warp " + std::to_string(t / kWarpSize) +
         ", lane " + std::to_string(t % kWarpSize) + ")";
}

inline Fiber& current_thread(const char* what) {
  Scheduler& s = sched();
  if (!s.current) throw std::runtime_error(std::string("cuda_emulation: ") + what + " called outside a kernel");
  return *s.current;
}

// Where lane `f` of a stuck warp is, for the divergence report.
inline std::string lane_state(const Fiber& f) {
  switch (f.state) {
    case State::AtWarp:
      return std::string("at ") + f.call->what + " (" + f.call->site.str() + ", mask " + hex(f.call->mask) +
             ", call #" + std::to_string(f.call->seq + 1) + " with that mask)";
    case State::AtBarrier:
      return "at __syncthreads() (" + f.barrier_site.str() + ")";
    case State::Done:
      return "returned";
    case State::Ready:
      break;
  }
  return "runnable";
}

// Every runnable thread has run and some lane still waits at a warp collective:
// the warp diverged. Names each lane's position, consecutive lanes grouped.
[[noreturn]] inline void throw_warp_divergence(unsigned warp) {
  const Scheduler& s = sched();
  const unsigned base = warp * kWarpSize, end = std::min(base + kWarpSize, s.nthreads);
  std::string msg = "cuda_emulation: warp divergence in " + launch_str() + ", warp " + std::to_string(warp) +
                    ": a warp collective waits for lanes that are elsewhere:";
  for (unsigned l = base; l < end;) {
    const std::string st = lane_state(s.fibers[l]);
    unsigned e = l + 1;
    while (e < end && lane_state(s.fibers[e]) == st) ++e;
    msg += std::string(l == base ? " " : "; ") +
           (e - l == 1 ? "lane " + std::to_string(l - base)
                       : "lanes " + std::to_string(l - base) + "-" + std::to_string(e - 1 - base)) +
           " " + st;
    l = e;
  }
  throw std::runtime_error(msg + ".");
}

inline void start_block(Scheduler& s, const Dim3& bidx) {
  s.block_idx = bidx;
  std::memset(s.dyn_base, 0xFF, std::max<std::size_t>(s.dyn_bytes, 16));  // NaN until the block writes it
  const auto own = kernel_shared().find(s.kernel_key);
  if (own != kernel_shared().end())
    for (const auto& [p, n] : own->second) std::memset(p, 0xFF, n);
  const Dim3& block = s.block;
  for (unsigned t = 0; t < s.nthreads; ++t) {
    Fiber& f = s.fibers[t];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    f.state = State::Ready;
    f.index = t;
    f.ctx = {Dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y)), bidx, block, s.grid};
    f.call = nullptr;
    f.seq.clear();
    f.uncommitted.clear();
    f.groups.clear();
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = f.stack.get();
    f.uc.uc_stack.ss_size = kStackBytes;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, trampoline, 0);
  }
}

// Runs body once per thread of every block of the grid.
inline void run_grid(const Dim3& grid, const Dim3& block, std::size_t smem, const char* kernel, const void* key,
                     const std::function<void()>& body) {
  Scheduler& s = sched();
  if (s.active) throw std::runtime_error("cuda_emulation: a kernel launched another kernel");
  const unsigned nt = block.count();
  if (nt == 0 || nt > 1024 || grid.count() == 0)
    throw std::runtime_error("cuda_emulation: invalid launch configuration " + std::string(kernel) +
                             shape_str(grid, block));
  if (grid.y > 65535 || grid.z > 65535)
    throw std::runtime_error("cuda_emulation: grid y/z above 65535 in " + std::string(kernel) + shape_str(grid, block));
  if (grid.x > 2147483647u || block.z > 64)  // block x and y are within 1024 with the count
    throw std::runtime_error("cuda_emulation: grid x above 2^31-1 or block z above 64 in " + std::string(kernel) +
                             shape_str(grid, block));
  if (s.fibers.size() < nt) s.fibers.resize(nt);
  s.body = &body;
  s.active = true;
  s.kernel = kernel;
  s.kernel_key = key;
  s.bounds_declared = false;
  s.grid = grid;
  s.block = block;
  s.nthreads = nt;
  {
    // Aligned as the hardware's (ldmatrix and cp.async need 16 bytes); a kernel that
    // declares extern __shared__ on a launch without any gets a pointer to poison.
    constexpr std::size_t kAlign = 128;
    if (s.dyn_storage.size() < smem + 2 * kAlign) s.dyn_storage.resize(smem + 2 * kAlign);
    const uintptr_t p = reinterpret_cast<uintptr_t>(s.dyn_storage.data());
    s.dyn_base = s.dyn_storage.data() + ((kAlign - p % kAlign) % kAlign);
    s.dyn_bytes = smem;
  }
  struct Reset {
    Scheduler& s;
    ~Reset() {
      s.active = false;
      s.current = nullptr;
      s.body = nullptr;
      s.error = nullptr;
      s.dyn_base = nullptr;
      s.dyn_bytes = 0;
      s.kernel = "kernel";
      s.kernel_key = nullptr;
    }
  } reset{s};
  const uint64_t blocks = uint64_t(grid.count());
  const bool reverse = schedule() == Schedule::Reverse;
  for (uint64_t bi = 0; bi < blocks; ++bi) {
    const uint64_t rb = reverse ? bi : blocks - 1 - bi;  // the forward schedule runs the last block first
    start_block(s, Dim3(unsigned(rb % grid.x), unsigned(rb / grid.x % grid.y), unsigned(rb / grid.x / grid.y)));
    for (;;) {
      // Run until nothing is runnable; a completed warp collective makes lanes runnable again.
      for (bool ran = true; ran && !s.error;) {
        ran = false;
        for (unsigned k = 0; k < nt && !s.error; ++k) {
          Fiber& f = s.fibers[reverse ? nt - 1 - k : k];
          if (f.state != State::Ready) continue;
          s.current = &f;
          swapcontext(&s.main, &f.uc);
          s.current = nullptr;
          ran = true;
        }
      }
      if (s.error) std::rethrow_exception(std::exchange(s.error, nullptr));
      unsigned waiting = 0, done = 0;
      for (unsigned t = 0; t < nt; ++t) {
        const State st = s.fibers[t].state;
        if (st == State::AtWarp) throw_warp_divergence(t / kWarpSize);
        (st == State::Done ? done : waiting) += 1;
      }
      if (done == nt) break;
      if (waiting != nt)
        throw std::runtime_error("cuda_emulation: __syncthreads() not reached by every thread of the block: " +
                                 std::to_string(waiting) + " of " + std::to_string(nt) +
                                 " threads wait at a barrier that the others never reach, in " + launch_str());
      for (unsigned t = 0; t < nt; ++t) s.fibers[t].state = State::Ready;
    }
    // Up to 255 registers a thread fit 256 threads in an SM's 64K; a larger block without
    // __launch_bounds__ runs only while the compiler happens to use few enough.
    if (nt > kMaxUnboundedThreads && !s.bounds_declared)
      throw std::runtime_error("cuda_emulation: " + launch_str() + " launches " + std::to_string(nt) +
                               " threads a block but its kernel declares no __launch_bounds__: above " +
                               std::to_string(kMaxUnboundedThreads) +
                               " threads the device refuses the launch once the kernel needs more than " +
                               std::to_string(65536 / nt) + " registers a thread; declare __launch_bounds__(" +
                               std::to_string(nt) + ")");
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

inline void syncthreads(Site site = Site::here()) {
  detail::Scheduler& s = detail::sched();
  if (!s.current) {
    std::fprintf(stderr, "cuda_emulation: __syncthreads() outside a kernel\n");
    std::abort();
  }
  detail::Fiber* f = s.current;
  f->state = detail::State::AtBarrier;
  f->barrier_site = site;
  swapcontext(&f->uc, &s.main);
}

// kernel<<<grid, block>>>(args...): grid and block are integers or dim3.
template <class... P, class... A>
void launch(void (*kernel)(P...), Dim3 grid, Dim3 block, const A&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "cuda_emulation: kernel argument count");
  const std::function<void()> body = [&] { kernel(args...); };
  detail::run_grid(grid, block, 0, "kernel", reinterpret_cast<const void*>(kernel), body);
}

// What tests/emu/rewrite.cmake turns `kernel<<<grid, block, smem, stream>>>(args)`
// into: `::dd_emu::Launch(grid, block, smem, stream).named("kernel").run(kernel, args)`.
struct Launch {
  Dim3 grid, block;
  std::size_t smem = 0;
  const char* name = "kernel";
  template <class S = std::nullptr_t>
  Launch(Dim3 g, Dim3 b, std::size_t smem_ = 0, S = nullptr) : grid(g), block(b), smem(smem_) {}
  Launch& named(const char* n) {
    name = n;
    return *this;
  }
  template <class... P, class... A>
  void run(void (*kernel)(P...), const A&... args) const {
    static_assert(sizeof...(P) == sizeof...(A), "cuda_emulation: kernel argument count");
    // As on sm_90: 48 KB of dynamic shared memory by default, up to 227 KB after opting in.
    const std::string head = "cuda_emulation: " + std::string(name) + shape_str() + " asks for " +
                             std::to_string(smem) + " bytes of dynamic shared memory";
    if (smem > detail::kSmemOptInMax)
      throw std::runtime_error(head + ", more than the " + std::to_string(detail::kSmemOptInMax) + " a block can have");
    if (smem > detail::kSmemDefaultMax) {
      const auto& m = detail::max_dynamic_smem();
      const auto it = m.find(reinterpret_cast<const void*>(kernel));
      if (it == m.end() || std::size_t(it->second) < smem)
        throw std::runtime_error(head + ": above 48 KB it needs cudaFuncSetAttribute(kernel, " +
                                 "cudaFuncAttributeMaxDynamicSharedMemorySize, >= " + std::to_string(smem) +
                                 ") first" + (it == m.end() ? "" : " (it was set to " + std::to_string(it->second) + ")"));
    }
    detail::check_smem_total(reinterpret_cast<const void*>(kernel), name, smem);
    const std::function<void()> body = [&] { kernel(args...); };
    detail::run_grid(grid, block, smem, name, reinterpret_cast<const void*>(kernel), body);
  }
  std::string shape_str() const { return detail::shape_str(grid, block); }
};

#ifdef DD_EMU_HAVE_CUDA_TYPES
// cudaFuncSetAttribute for the emulated kernels (the name is redefined below):
// only the dynamic shared memory limit means anything here.
template <class F>
cudaError_t func_set_attribute(F* kernel, cudaFuncAttribute attr, int value) {
  static_assert(std::is_function_v<F>, "cudaFuncSetAttribute takes a kernel");
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || std::size_t(value) > detail::kSmemOptInMax) return cudaErrorInvalidValue;
    detail::max_dynamic_smem()[reinterpret_cast<const void*>(kernel)] = value;
  }
  return cudaSuccess;
}
#endif
// Tests that check the 48 KB rule start from no attributes set.
inline void reset_func_attributes() { detail::max_dynamic_smem().clear(); }

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

#include "tests/support/cuda_emulation_launch.h"
#include "tests/support/cuda_emulation_memory.h"
#include "tests/support/cuda_emulation_warp.h"

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

// kernels/cuda/warp_ops.cuh keys its emulated path on this.
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
#define DD_EMU_LAUNCH_BOUNDS(...) ::dd_emu::check_launch_bounds(__VA_ARGS__)
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() ::dd_emu::syncthreads()
#define threadIdx (::dd_emu::ctx().thread_idx)
#define blockIdx (::dd_emu::ctx().block_idx)
#define blockDim (::dd_emu::ctx().block_dim)
#define gridDim (::dd_emu::ctx().grid_dim)
// The warp intrinsics, with the caller's line for divergence reports.
#define __shfl_sync(...) ::dd_emu::shfl_sync(__VA_ARGS__)
#define __shfl_up_sync(...) ::dd_emu::shfl_up_sync(__VA_ARGS__)
#define __shfl_down_sync(...) ::dd_emu::shfl_down_sync(__VA_ARGS__)
#define __shfl_xor_sync(...) ::dd_emu::shfl_xor_sync(__VA_ARGS__)
#define __ballot_sync(...) ::dd_emu::ballot_sync(__VA_ARGS__)
#define __any_sync(...) ::dd_emu::any_sync(__VA_ARGS__)
#define __all_sync(...) ::dd_emu::all_sync(__VA_ARGS__)
#define __syncwarp(...) ::dd_emu::syncwarp(__VA_ARGS__)
#ifdef DD_EMU_HAVE_CUDA_TYPES
#define cudaFuncSetAttribute ::dd_emu::func_set_attribute
#endif
// What tests/emu/rewrite.cmake appends to each `__shared__` declaration, per array.
#define DD_EMU_CAT2(a, b) a##b
#define DD_EMU_CAT(a, b) DD_EMU_CAT2(a, b)
#define DD_EMU_SHARED(name)                                                                   \
  [[maybe_unused]] static const bool DD_EMU_CAT(dd_emu_shared_registered_, __COUNTER__) = \
      ::dd_emu::register_shared(&(name), sizeof(name), #name, ::dd_emu::Site::here());

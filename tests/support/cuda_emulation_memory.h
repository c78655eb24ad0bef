#pragma once
// Part of tests/support/cuda_emulation.h (include that one): the shared memory
// the emulator knows, and cp.async.
//
// Shared memory. ldmatrix and cp.async must address shared memory, 16-byte
// aligned; the hardware would fault or read the wrong bytes silently. The
// emulator knows two kinds of shared memory: static `__shared__` arrays that
// tests/emu/rewrite.cmake registered (it appends DD_EMU_SHARED(name) to each
// declaration; files included directly, as tests/test_attention_cuda_emulation.cpp
// does, are not registered), and the launch's `extern __shared__` buffer. An
// access must lie inside one of them. Two arrays that happen to be adjacent in
// host memory are still two arrays: a row that runs from one into the next is
// reported.
//
// cp.async (sm_80+): the copy is deferred. At issue the destination's 16 bytes
// become 0xFF (NaN as float, bf16 or f16) and the source bytes are kept; they
// land at the cp.async.wait_group that retires their group (groups are counted
// per thread, as on the hardware), so a kernel that reads a stage before waiting
// for it reads NaN. __syncthreads() does not complete copies, and a thread that
// returns with copies in flight drops them.
#include <map>

namespace dd_emu {
namespace detail {

struct SharedArray {
  uintptr_t begin = 0, end = 0;
  const char* name = "";
  Site site;
};

inline std::map<uintptr_t, SharedArray>& shared_arrays() {
  static std::map<uintptr_t, SharedArray> m;
  return m;
}

inline std::string array_str(const SharedArray& a) {
  return "`" + std::string(a.name) + "` (" + std::to_string(a.end - a.begin) + " bytes" +
         (a.site.line ? ", declared at " + a.site.str() : "") + ")";
}

// The shared array holding address p: the launch's dynamic buffer or a registered array.
inline bool find_shared(uintptr_t p, SharedArray& out) {
  const Scheduler& s = sched();
  const uintptr_t dyn = reinterpret_cast<uintptr_t>(s.dyn_base);
  if (s.active && p >= dyn && p < dyn + s.dyn_bytes) {
    out = {dyn, dyn + s.dyn_bytes, "extern __shared__", Site{}};
    return true;
  }
  const auto& m = shared_arrays();
  auto it = m.upper_bound(p);
  if (it == m.begin()) return false;
  --it;
  if (p >= it->second.end) return false;
  out = it->second;
  return true;
}

// Why n bytes at p, which must be `align`-byte aligned, are not a valid shared
// memory access; empty when they are. Built only on failure.
inline std::string shared_problem(const void* p, std::size_t n, std::size_t align) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  SharedArray arr;
  if (!find_shared(a, arr))
    return "address " + hex(a) +
           " is not inside any __shared__ array the emulator knows (the registered static __shared__ arrays and " +
           "this launch's " + std::to_string(sched().dyn_bytes) + " bytes of extern __shared__)";
  if (a % align != 0)
    return "address " + hex(a) + " is not " + std::to_string(align) + "-byte aligned (byte " +
           std::to_string(a - arr.begin) + " of " + array_str(arr) + ")";
  if (a + n > arr.end)
    return "the " + std::to_string(n) + " bytes at byte " + std::to_string(a - arr.begin) + " run past the end of " +
           array_str(arr);
  return "";
}

inline std::string ptx_site(const char* what, const Site& site) {
  return "cuda_emulation: " + std::string(what) + " at " + site.str() + " in " + where();
}

}  // namespace detail

// Called once per static __shared__ array (DD_EMU_SHARED, appended by
// tests/emu/rewrite.cmake); a kernel template's instantiations register one
// array each.
// The array starts as NaN (0xFF bytes), and the kernel registering it gets it
// refilled before each of its blocks; an array of a __device__ function that
// several kernels call is refilled only for the first of them.
inline bool register_shared(const void* p, std::size_t bytes, const char* name, Site site) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  detail::shared_arrays()[a] = {a, a + bytes, name, site};
  void* const q = const_cast<void*>(p);
  std::memset(q, 0xFF, bytes);
  const detail::Scheduler& s = detail::sched();
  if (s.active) {
    detail::kernel_shared()[s.kernel_key].emplace_back(q, bytes);
    detail::check_smem_total(s.kernel_key, s.kernel, s.dyn_bytes);
  }
  return true;
}

// `extern __shared__ T name[];` becomes `T* const name = ::dd_emu::dynamic_shared<T>();`.
template <class T>
T* dynamic_shared() {
  detail::Scheduler& s = detail::sched();
  if (!s.current)
    throw std::runtime_error(
        "cuda_emulation: extern __shared__ read outside a kernel (declare it inside the kernel: the "
        "emulated buffer exists per launch)");
  return reinterpret_cast<T*>(s.dyn_base);
}

// cp.async.cg.shared.global [dst], [src], 16, src_bytes: src_bytes (0..16) are
// read, the rest of the 16 bytes are zeros.
inline void cp_async_16(void* dst, const void* src, int src_bytes = 16, Site site = Site::here()) {
  detail::Fiber& f = detail::current_thread("cp.async");
  std::string why = detail::shared_problem(dst, 16, 16);
  if (!why.empty()) throw std::runtime_error(detail::ptx_site("cp.async", site) + ": destination " + why);
  const uintptr_t s = reinterpret_cast<uintptr_t>(src);
  if (src_bytes < 0 || src_bytes > 16)
    throw std::runtime_error(detail::ptx_site("cp.async", site) + ": src-size " + std::to_string(src_bytes) +
                             " is outside 0..16");
  if (src_bytes > 0 && s % 16 != 0)
    throw std::runtime_error(detail::ptx_site("cp.async", site) + ": source " + detail::hex(s) +
                             " is not 16-byte aligned");
  detail::SharedArray arr;
  if (src_bytes > 0 && detail::find_shared(s, arr))
    throw std::runtime_error(detail::ptx_site("cp.async", site) + ": source " + detail::hex(s) +
                             " is shared memory (" + detail::array_str(arr) + "); cp.async reads global memory");
  detail::AsyncCopy c;
  c.dst = static_cast<unsigned char*>(dst);
  if (src_bytes > 0) std::memcpy(c.bytes, src, std::size_t(src_bytes));
  std::memset(c.bytes + src_bytes, 0, std::size_t(16 - src_bytes));
  std::memset(dst, 0xFF, 16);
  f.uncommitted.push_back(c);
}

// cp.async.commit_group: the copies issued since the last commit form a group
// (possibly empty, as on the hardware).
inline void cp_async_commit() {
  detail::Fiber& f = detail::current_thread("cp.async.commit_group");
  f.groups.push_back(std::move(f.uncommitted));
  f.uncommitted.clear();
}

// cp.async.wait_group n: the oldest groups land until at most n are pending.
// Copies not yet committed are in no group and stay pending.
inline void cp_async_wait(int n) {
  detail::Fiber& f = detail::current_thread("cp.async.wait_group");
  while (f.groups.size() > std::size_t(n < 0 ? 0 : n)) {
    for (const detail::AsyncCopy& c : f.groups.front()) std::memcpy(c.dst, c.bytes, 16);
    f.groups.pop_front();
  }
}

// cp.async.wait_all: commit, then wait for every group.
inline void cp_async_wait_all() {
  cp_async_commit();
  cp_async_wait(0);
}

}  // namespace dd_emu

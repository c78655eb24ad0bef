#pragma once
// Raw device memory and copies. Implemented in engine/cuda/device.cu when the
// CUDA backend is built; otherwise every call throws a clear "built without CUDA".
#include <cstddef>
#include <functional>
#include <string>

namespace dd {

enum class Device { CPU, CUDA };
const char* device_name(Device d);
// Parses "cpu" or "cuda" (the --device flag); throws naming the bad value.
Device parse_device(const char* name);

// True when this build has the CUDA backend and a CUDA device is present; false when there is
// no device or no NVIDIA driver at all. Any other failure to reach the device (a driver older than
// the runtime, a driver library missing beside loaded kernel modules, an initialisation error)
// throws with the CUDA error: a broken GPU machine must never pass for a CPU machine, or its GPU
// tests would report "skipped" instead of failing.
bool cuda_available();
bool cuda_built();

// What the CUDA runtime said when asked for its devices, as plain facts so the verdict below is
// testable without a GPU.
struct CudaProbe {
  bool ok = false;                    // cudaGetDeviceCount returned cudaSuccess
  int device_count = 0;
  bool no_device = false;             // cudaErrorNoDevice (also what CUDA_VISIBLE_DEVICES="" gives)
  bool insufficient_driver = false;   // cudaErrorInsufficientDriver
  std::string error;                  // "cudaErrorX: description" when !ok
  int driver_version = 0;             // cudaDriverGetVersion: 0 when no driver library could be loaded
  int runtime_version = 0;            // cudaRuntimeGetVersion
  bool device_node = false;           // /dev/nvidiactl or /dev/nvidia0 exists (kernel driver loaded)
};
// True: use the device. False: there is none. Throws naming the cause when a device is there but
// unusable.
bool cuda_probe_verdict(const CudaProbe& p);

// The apps' --device flag: "cpu", "cuda", or "auto" (cuda when available,
// else cpu). "cuda" without a usable device throws, naming the flag and why.
Device resolve_device(const std::string& name, const char* flag = "--device");

namespace cuda_mem {
// From the current context's pool (engine/context.h).
void* alloc(std::size_t bytes);
void* alloc_in_pool(std::size_t bytes, int pool);
void free(void* p) noexcept;

// Private pools, for CUDA graphs: blocks handed out while a pool is current are reused only by
// that pool, so a captured graph's tensors keep their addresses for every replay while eager work
// allocates elsewhere. release_pool (after the graph is destroyed) returns them to the general pool.
int create_pool();
void release_pool(int pool);
class PoolScope {
 public:
  explicit PoolScope(int pool);
  ~PoolScope();
  PoolScope(const PoolScope&) = delete;
  PoolScope& operator=(const PoolScope&) = delete;

 private:
  int prev_;
};

// Writes `bytes` (at most kWriteSmallMax) of host data to device memory as the argument of a
// one-block kernel: no pinned buffer, no wait, and legal inside a captured graph (whose replays
// write the value captured). The per-step scalars of a graph are written this way before a replay.
constexpr std::size_t kWriteSmallMax = 256;
void write_small(void* dst, const void* src, std::size_t bytes);
// Counted by DD_CUDA_LAUNCH_CHECK (engine/cuda_check.h): every kernel launch of the engine.
void count_launch() noexcept;
// Host to device on the engine's stream, through a pinned staging buffer (asynchronous); src may be
// reused as soon as this returns.
void copy_h2d(void* dst, const void* src, std::size_t bytes);
// The pinned path alone: false (nothing queued) when bytes exceed the staging limit (64 MiB) or
// pinned memory could not be had. Used by copy_h2d.
bool copy_h2d_staged(void* dst, const void* src, std::size_t bytes);
void copy_d2h(void* dst, const void* src, std::size_t bytes);
void copy_d2d(void* dst, const void* src, std::size_t bytes);
void memset(void* dst, int value, std::size_t bytes);
void fill_f32(float* dst, float value, std::size_t count);
void synchronize();
// Milliseconds of device time the work f enqueues on the engine's stream takes, between two events
// recorded around it (the host waits for the second; throws while a CUDA graph is captured).
float time_ms(const std::function<void()>& f);

// The caching allocator's counters (bytes). Without CUDA every field is 0.
struct Stats {
  std::size_t in_use = 0;       // held by live tensors
  std::size_t peak_in_use = 0;  // since the last reset_peak()
  std::size_t cached = 0;       // freed, kept for reuse
  std::size_t reserved = 0;     // in_use + cached: what cudaMalloc handed out
  long long device_mallocs = 0;  // cudaMalloc calls so far
  long long h2d_staged = 0;      // host-to-device copies through pinned staging (asynchronous)
  long long h2d_pageable = 0;    // host-to-device copies from pageable memory (the host waits)
  long long d2h_copies = 0;      // device-to-host copies (each waits for the stream)
  long long host_syncs = 0;      // times the host waited for the stream to drain (d2h copies included)
  long long launches = 0;        // kernel launches (DD_CUDA_LAUNCH_CHECK), cuBLAS and graph replays not included
};
Stats stats();
void reset_peak();
// Returns every cached block of the general pool to the driver (after synchronizing the stream).
void empty_cache();
}  // namespace cuda_mem

// Bytes held by live CPU tensors, counted where their storage is allocated: what a CPU run's
// tensors hold at its peak (the process's RSS adds the heap's cached blocks and everything else).
namespace host_mem {
struct Stats {
  std::size_t in_use = 0;
  std::size_t peak_in_use = 0;  // since the last reset_peak()
};
Stats stats();
void reset_peak();
}  // namespace host_mem

}  // namespace dd

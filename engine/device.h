#pragma once
// Raw device memory and copies. Implemented in engine/cuda/device.cu when the
// CUDA backend is built; otherwise every call throws a clear "built without CUDA".
#include <cstddef>
#include <string>

namespace dd {

enum class Device { CPU, CUDA };
const char* device_name(Device d);
// Parses "cpu" or "cuda" (the --device flag); throws naming the bad value.
Device parse_device(const char* name);

// True when this build has the CUDA backend and a CUDA device is present.
bool cuda_available();
bool cuda_built();

// The apps' --device flag: "cpu", "cuda", or "auto" (cuda when available,
// else cpu). "cuda" without a usable device throws, naming the flag and why.
Device resolve_device(const std::string& name, const char* flag = "--device");

namespace cuda_mem {
void* alloc(std::size_t bytes);
void free(void* p) noexcept;
void copy_h2d(void* dst, const void* src, std::size_t bytes);
void copy_d2h(void* dst, const void* src, std::size_t bytes);
void copy_d2d(void* dst, const void* src, std::size_t bytes);
void memset(void* dst, int value, std::size_t bytes);
void fill_f32(float* dst, float value, std::size_t count);
void synchronize();

// The caching allocator's counters (bytes). Without CUDA every field is 0.
struct Stats {
  std::size_t in_use = 0;       // held by live tensors
  std::size_t peak_in_use = 0;  // since the last reset_peak()
  std::size_t cached = 0;       // freed, kept for reuse
  std::size_t reserved = 0;     // in_use + cached: what cudaMalloc handed out
  long long device_mallocs = 0;  // cudaMalloc calls so far
};
Stats stats();
void reset_peak();
// Returns every cached block to the driver (after synchronizing the stream).
void empty_cache();
}  // namespace cuda_mem

}  // namespace dd

#include "engine/device.h"

#include <cstring>

#include "engine/error.h"

namespace dd {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

Device parse_device(const char* name) {
  if (std::strcmp(name, "cpu") == 0) return Device::CPU;
  if (std::strcmp(name, "cuda") == 0) return Device::CUDA;
  DD_FAIL("unknown device '", name, "': expected 'cpu' or 'cuda'");
}

Device resolve_device(const std::string& name, const char* flag) {
  if (name == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  DD_CHECK(name == "cpu" || name == "cuda", flag, " must be cpu, cuda or auto, got '", name, "'");
  if (name == "cpu") return Device::CPU;
  DD_CHECK(cuda_built(), flag, " cuda: this build has no CUDA backend (the CUDA toolkit was not found when it was "
                         "configured); use ", flag, " cpu");
  DD_CHECK(cuda_available(), flag, " cuda: no CUDA device found (is the NVIDIA driver loaded?); use ", flag, " cpu");
  return Device::CUDA;
}

bool cuda_built() {
#ifdef DD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#ifndef DD_WITH_CUDA
bool cuda_available() { return false; }
namespace cuda_mem {
[[noreturn]] static void no_cuda(const char* what) {
  DD_FAIL(what, ": this build has no CUDA backend (configure with the CUDA toolkit present)");
}
void* alloc(std::size_t) { no_cuda("cuda alloc"); }
void free(void*) noexcept {}
void copy_h2d(void*, const void*, std::size_t) { no_cuda("copy to cuda"); }
void copy_d2h(void*, const void*, std::size_t) { no_cuda("copy from cuda"); }
void copy_d2d(void*, const void*, std::size_t) { no_cuda("cuda copy"); }
void memset(void*, int, std::size_t) { no_cuda("cuda memset"); }
void fill_f32(float*, float, std::size_t) { no_cuda("cuda fill"); }
void synchronize() {}
Stats stats() { return {}; }
void reset_peak() {}
void empty_cache() {}
}  // namespace cuda_mem
#endif

}  // namespace dd

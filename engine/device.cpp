#include "engine/device.h"
#include "engine/cuda_graph.h"

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

namespace {
std::string cuda_version_str(int v) { return str_cat(v / 1000, ".", (v % 1000) / 10); }
}  // namespace

bool cuda_probe_verdict(const CudaProbe& p) {
  if (p.ok) return p.device_count > 0;
  if (p.no_device) return false;
  if (p.insufficient_driver && p.driver_version == 0) {
    // No libcuda at all: a machine without an NVIDIA driver, unless its kernel side is there.
    DD_CHECK(!p.device_node, "CUDA: an NVIDIA device node exists (/dev/nvidiactl or /dev/nvidia0) but the CUDA "
             "driver library (libcuda.so.1) could not be loaded: ", p.error,
             "; check the driver installation (nvidia-smi) and LD_LIBRARY_PATH");
    return false;
  }
  if (p.insufficient_driver)
    DD_FAIL("CUDA: the NVIDIA driver supports CUDA up to ", cuda_version_str(p.driver_version),
            " but this program was built with the CUDA ", cuda_version_str(p.runtime_version),
            " runtime: update the driver or rebuild with an older toolkit (", p.error, ")");
  DD_FAIL("CUDA: cannot reach the GPU: ", p.error, " (driver ", cuda_version_str(p.driver_version), ", runtime ",
          cuda_version_str(p.runtime_version), ")");
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
bool copy_h2d_staged(void*, const void*, std::size_t) { no_cuda("copy to cuda"); }
void copy_d2h(void*, const void*, std::size_t) { no_cuda("copy from cuda"); }
void copy_d2d(void*, const void*, std::size_t) { no_cuda("cuda copy"); }
void memset(void*, int, std::size_t) { no_cuda("cuda memset"); }
void fill_f32(float*, float, std::size_t) { no_cuda("cuda fill"); }
void synchronize() {}
float time_ms(const std::function<void()>&) { no_cuda("timing cuda work"); }
Stats stats() { return {}; }
void reset_peak() {}
void empty_cache() {}
void* alloc_in_pool(std::size_t, int) { no_cuda("cuda alloc"); }
int create_pool() { no_cuda("cuda memory pool"); }
void release_pool(int) {}
PoolScope::PoolScope(int pool) : prev_(pool) {}
PoolScope::~PoolScope() {}
void write_small(void*, const void*, std::size_t) { no_cuda("cuda write"); }
void count_launch() noexcept {}
}  // namespace cuda_mem

bool cuda_graphs_supported() { return false; }
struct CudaGraph::Impl {};
CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}
CudaGraph::~CudaGraph() = default;
void CudaGraph::capture(const std::function<void()>&) { DD_FAIL("CUDA graphs: this build has no CUDA backend"); }
void CudaGraph::replay() { DD_FAIL("CUDA graphs: this build has no CUDA backend"); }
bool CudaGraph::captured() const { return false; }
long long CudaGraph::nodes() const { return 0; }
#endif

}  // namespace dd

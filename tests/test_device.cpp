// The --device flag's resolution, and the caching allocator's counters, on a
// machine with or without a GPU.
#include <catch2/catch.hpp>

#include "engine/device.h"

using namespace dd;
using Catch::Contains;

TEST_CASE("device: --device auto, cpu and cuda resolve or fail clearly", "[device]") {
  CHECK(resolve_device("cpu") == Device::CPU);
  CHECK(resolve_device("auto") == (cuda_available() ? Device::CUDA : Device::CPU));
  CHECK_THROWS_WITH(resolve_device("gpu"), Contains("--device must be cpu, cuda or auto, got 'gpu'"));
  CHECK_THROWS_WITH(resolve_device("tpu", "--dev"), Contains("--dev must be"));
  if (!cuda_built()) {
    CHECK_THROWS_WITH(resolve_device("cuda"), Contains("no CUDA backend"));
  } else if (!cuda_available()) {
    CHECK_THROWS_WITH(resolve_device("cuda"), Contains("--device cuda: no CUDA device found"));
  } else {
    CHECK(resolve_device("cuda") == Device::CUDA);
  }
}

TEST_CASE("device: allocator counters are zero until a GPU is used", "[device]") {
  if (cuda_available()) return;  // tests/gpu covers the allocator with a device
  const cuda_mem::Stats s = cuda_mem::stats();
  CHECK(s.in_use == 0);
  CHECK(s.device_mallocs == 0);
  cuda_mem::empty_cache();  // harmless without a device
}

// A broken GPU machine must fail, never skip: only "no device" and "no driver at all" are false.
TEST_CASE("device: the CUDA probe skips only when there is no GPU", "[device]") {
  CudaProbe ok;
  ok.ok = true;
  ok.device_count = 1;
  CHECK(cuda_probe_verdict(ok));
  ok.device_count = 0;
  CHECK_FALSE(cuda_probe_verdict(ok));

  CudaProbe none;  // cudaErrorNoDevice, e.g. CUDA_VISIBLE_DEVICES=""
  none.no_device = true;
  none.device_node = true;
  none.driver_version = 13000;
  none.error = "cudaErrorNoDevice: no CUDA-capable device is detected";
  CHECK_FALSE(cuda_probe_verdict(none));

  CudaProbe no_driver;  // a CPU machine: no libcuda, no device node (what CI sees)
  no_driver.insufficient_driver = true;
  no_driver.runtime_version = 13000;
  no_driver.error = "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version";
  CHECK_FALSE(cuda_probe_verdict(no_driver));

  CudaProbe lost_lib = no_driver;  // kernel module loaded, libcuda.so.1 not found
  lost_lib.device_node = true;
  CHECK_THROWS_WITH(cuda_probe_verdict(lost_lib), Contains("libcuda.so.1") && Contains("cudaErrorInsufficientDriver"));

  CudaProbe old_driver = no_driver;  // a driver older than the runtime
  old_driver.driver_version = 12020;
  old_driver.device_node = true;
  CHECK_THROWS_WITH(cuda_probe_verdict(old_driver),
                    Contains("supports CUDA up to 12.2") && Contains("CUDA 13.0 runtime"));

  CudaProbe other;  // anything else: an initialisation error, a busy or unsupported device
  other.driver_version = 13000;
  other.runtime_version = 13000;
  other.error = "cudaErrorInitializationError: initialization error";
  CHECK_THROWS_WITH(cuda_probe_verdict(other), Contains("cannot reach the GPU: cudaErrorInitializationError"));
}

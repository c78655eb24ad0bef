// Runner for the GPU tests. Without a CUDA device it exits with 77, which
// ctest maps to "skipped" (SKIP_RETURN_CODE), so a machine with no GPU never
// reports these tests as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <exception>

#include "engine/device.h"
#include "engine/tensor.h"

int main(int argc, char* argv[]) {
  // Listing the cases needs no device (scripts/gpu_cases.py lists them before running each alone).
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--list", 6) == 0 || std::strcmp(argv[i], "-l") == 0)
      return Catch::Session().run(argc, argv);
  // A device that is present but unusable (old driver, broken install) fails here with the CUDA
  // error; only a machine with no GPU at all skips.
  try {
    if (!dd::cuda_available()) {
      std::printf("dd_gpu_tests: no CUDA device found: skipping all GPU tests\n");
      return 77;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dd_gpu_tests: FAILED to reach the GPU: %s\n", e.what());
    return 1;
  }
  // Every new tensor (CPU and GPU) starts as NaN: an unwritten element fails.
  dd::set_poison_new_tensors(true);
  return Catch::Session().run(argc, argv);
}

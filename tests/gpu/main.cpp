// Runner for the GPU tests. Without a CUDA device it exits with 77, which
// ctest maps to "skipped" (SKIP_RETURN_CODE), so a machine with no GPU never
// reports these tests as passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "engine/device.h"
#include "engine/tensor.h"

int main(int argc, char* argv[]) {
  if (!dd::cuda_available()) {
    std::printf("dd_gpu_tests: no CUDA device found: skipping all GPU tests\n");
    return 77;
  }
  // Every new tensor (CPU and GPU) starts as NaN: an unwritten element fails.
  dd::set_poison_new_tensors(true);
  return Catch::Session().run(argc, argv);
}

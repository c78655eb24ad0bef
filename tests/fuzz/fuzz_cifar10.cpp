// libFuzzer harness: the CIFAR-10 binary reader (apps/data/cifar10.h) on one data_batch file.
#include <cstdint>

#include "apps/data/cifar10.h"
#include "engine/error.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string path = dd::fuzz::write_input("cifar/data_batch_1.bin", data, size);
  try {
    (void)dd::data::load_cifar10(dd::fuzz::scratch_dir() + "/cifar");
  } catch (const dd::Error&) {
  }
  return 0;
}

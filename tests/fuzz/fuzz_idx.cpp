// libFuzzer harness: the IDX image reader (apps/data/idx.h), raw and gzip-compressed: the first
// input byte picks the file name (.gz or not; zlib reads either way), the rest is the file.
#include <cstdint>

#include "apps/data/idx.h"
#include "engine/error.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const char* name = (data[0] & 1) ? "images-idx3-ubyte.gz" : "images-idx3-ubyte";
  const std::string path = dd::fuzz::write_input(name, data + 1, size - 1);
  try {
    (void)dd::data::load_idx_images(path);
  } catch (const dd::Error&) {
  }
  return 0;
}

// libFuzzer harness: the image-folder path (apps/data/image_folder.h): stb_image's decoders (PNG,
// JPEG, BMP, ... chosen by content), then the center crop and resize. The first byte picks the
// output size and channel request.
#include <cstdint>

#include "apps/data/image_folder.h"
#include "engine/error.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int64_t image_size = 1 + (data[0] & 15), channels = (data[0] >> 4) % 4;  // 0 = the files'
  dd::fuzz::write_input("images/a.img", data + 1, size - 1);
  try {
    (void)dd::data::load_image_folder(dd::fuzz::scratch_dir() + "/images", image_size, channels);
  } catch (const dd::Error&) {
  }
  return 0;
}

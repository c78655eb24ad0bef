// libFuzzer harness: the image-folder path (apps/data/image_folder.h): stb_image's decoders (PNG,
// JPEG, BMP, ... chosen by content), then the center crop and resize, or (FID's reader) the images
// as they are. The first byte picks the output size, the channel request and the reader.
#include <cstdint>
#include <string>

#include "apps/data/image_folder.h"
#include "engine/error.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int64_t image_size = 1 + (data[0] & 15), channels = (data[0] >> 4) % 4;  // 0 = the files'
  const bool as_is = (data[0] & 0x80) != 0;
  const std::string path = dd::fuzz::write_input("images/a.img", data + 1, size - 1);
  // Images up to the loaders' limit (2^26 pixels) are legitimate, and resampling one under ASan takes
  // longer than the fuzzer's timeout: the decoders and conversions are fuzzed on images up to 2^18
  // pixels (512 x 512; tests/test_data.cpp covers the limit itself). At 2^20 a CI run whose mutations
  // kept finding megapixel headers took 558 s for the 30,000 runs that usually take 6-30 s.
  dd::data::ImageHeader header;
  if (dd::data::read_image_header(path, header) && header.pixels() > (int64_t{1} << 18)) return 0;
  try {
    const std::string dir = dd::fuzz::scratch_dir() + "/images";
    if (as_is)
      (void)dd::data::load_image_folder_as_is(dir, channels == 2 ? 3 : channels);
    else
      (void)dd::data::load_image_folder(dir, image_size, channels);
  } catch (const dd::Error&) {
  }
  return 0;
}

// libFuzzer harness: numpy's array files (engine/npz.h) and the FID statistics read from them
// (models/fid_stats.h). The first input byte picks the reader, the rest is the file:
//   0: one .npy file (parse_npy), its values converted to float64;
//   1: an .npz archive in memory (parse_npz: zip, deflate, CRC-32, .npy), every array converted;
//   2: an .npz file as load_stats reads FID statistics (keys mu and sigma), whose Fréchet distance to
//      itself must then be computable.
// Any input must either load or throw dd::Error.
#include <cstdint>
#include <string>

#include "engine/error.h"
#include "engine/npz.h"
#include "models/fid_stats.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int mode = data[0] % 3;
  ++data;
  --size;
  try {
    if (mode == 0) {
      // A parsed array's bytes are in the input, so converting costs at most 8 bytes per input byte.
      (void)dd::npz::parse_npy(data, size, "fuzz.npy").to_f64();
    } else if (mode == 1) {
      for (const auto& [key, a] : dd::npz::parse_npz(data, size, "fuzz.npz")) (void)a.to_f64();
    } else {
      const std::string path = dd::fuzz::write_input("in.npz", data, size);
      const dd::fid::FidStats s = dd::fid::load_stats(path);
      // dim <= ~90 here (sigma's dim^2 doubles come from the input): two small eigendecompositions.
      (void)dd::fid::frechet_distance(s, s);
    }
  } catch (const dd::Error&) {
  }
  return 0;
}

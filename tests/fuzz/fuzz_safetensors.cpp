// libFuzzer harness: the safetensors reader (engine/safetensors.h). Any input must either load or
// throw dd::Error; a loaded file's tensors must convert as the apps convert them.
#include <cstdint>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string path = dd::fuzz::write_input("in.safetensors", data, size);
  try {
    const dd::SafeTensorsFile f = dd::load_safetensors(path);
    for (const auto& [name, t] : f.tensors) {
      if (t.numel() > (1 << 20)) continue;  // conversion cost only, nothing new to find
      try {
        (void)t.to_f32();
        (void)t.to_tensor();
      } catch (const dd::Error&) {
      }
    }
  } catch (const dd::Error&) {
  }
  return 0;
}

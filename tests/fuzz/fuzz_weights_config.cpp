// libFuzzer harness: the config JSON a weights file carries in its metadata (models/weights.h
// ModelConfig::from_json): any text must give a config or a dd::Error, never a crash, and a config
// that parses must survive its own round trip.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  try {
    const dd::models::ModelConfig c = dd::models::ModelConfig::from_json(j, "fuzz");
    (void)dd::models::ModelConfig::from_json(c.to_json(), "round trip");
  } catch (const dd::Error&) {
  }
  return 0;
}

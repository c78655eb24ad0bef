// Catch2 runner for the CPU tests: NaN-poisons every new tensor so an element
// that no kernel writes fails its comparison.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "engine/tensor.h"

int main(int argc, char* argv[]) {
  dd::set_poison_new_tensors(true);
  return Catch::Session().run(argc, argv);
}

#pragma once
// Runs a script of tests/torch/ under Debian's python (the one with torch), failing the test with
// the script's output when it does not succeed.
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace dd::test {

// /usr/bin/python3, or $DD_TORCH_PYTHON when set.
std::string torch_python();
// Runs tests/torch/<script> with args; returns its combined output; throws (with that output) on
// a non-zero exit.
std::string run_torch_script(const std::string& script, const std::vector<std::string>& args);
// The same for a script whose reference package (diffusers) may be missing: the script then exits 77
// and so does this process, which ctest reports as skipped (never passed). Throws on any other failure.
// Returns the script's combined output.
std::string run_reference_script(const std::string& script, const std::vector<std::string>& args);


}  // namespace dd::test

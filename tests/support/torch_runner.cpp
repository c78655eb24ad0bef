#include "tests/support/torch_runner.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <sys/wait.h>

#include "engine/error.h"

#ifndef DD_SOURCE_DIR
#error "DD_SOURCE_DIR must point at the repository root"
#endif

namespace dd::test {

std::string torch_python() {
  const char* env = std::getenv("DD_TORCH_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

namespace {
std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
}  // namespace

namespace {
// Runs tests/torch/<script> with args; returns its exit status and its combined output in *out.
int run_script(const std::string& script, const std::vector<std::string>& args, std::string* out) {
  std::string cmd = quote(torch_python()) + " " + quote(std::string(DD_SOURCE_DIR) + "/tests/torch/" + script);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  DD_CHECK(p, "could not start ", cmd);
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out->append(buf.data(), n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
}  // namespace

std::string run_torch_script(const std::string& script, const std::vector<std::string>& args) {
  std::string out;
  const int rc = run_script(script, args, &out);
  DD_CHECK(rc == 0, "tests/torch/", script, " failed (exit status ", rc, "). It needs Debian's python3-torch and ",
           "python3-numpy under ", torch_python(), " (scripts/install_deps.sh installs them). Output:\n", out);
  return out;
}

std::string run_reference_script(const std::string& script, const std::vector<std::string>& args) {
  std::string out;
  const int rc = run_script(script, args, &out);
  if (rc == 77) {
    std::printf("tests/torch/%s: its reference package is not installed (scripts/install_py_refs.sh): skipping\n%s",
                script.c_str(), out.c_str());
    std::exit(77);  // ctest reports the test skipped (SKIP_RETURN_CODE), never passed
  }
  DD_CHECK(rc == 0, "tests/torch/", script, " failed (exit status ", rc, "). Output:\n", out);
  return out;
}

}  // namespace dd::test

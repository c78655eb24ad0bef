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

std::string run_torch_script(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = quote(torch_python()) + " " + quote(std::string(DD_SOURCE_DIR) + "/tests/torch/" + script);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  DD_CHECK(p, "could not start ", cmd);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int rc = ::pclose(p);
  DD_CHECK(rc == 0, "tests/torch/", script, " failed (exit status ", rc, "). It needs Debian's python3-torch and ",
           "python3-numpy under ", torch_python(), " (scripts/install_deps.sh installs them). Output:\n", out);
  return out;
}

int run_python_script(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = quote(torch_python()) + " " + quote(std::string(DD_SOURCE_DIR) + "/tests/torch/" + script);
  for (const auto& a : args) cmd += " " + quote(a);
  cmd += " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  DD_CHECK(p, "could not start ", cmd);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(p);
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  if (rc != 0 && rc != 77) std::fprintf(stderr, "tests/torch/%s exited %d:\n%s\n", script.c_str(), rc, out.c_str());
  return rc;
}

}  // namespace dd::test

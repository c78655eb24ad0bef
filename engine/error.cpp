#include "engine/error.h"

#include <cstring>

namespace dd {

namespace {
// __FILE__ is the build machine's absolute path; users see the repository-relative one
// (engine/tensor.cpp:37), the same wherever the engine was built.
const char* relative_source(const char* file) {
#ifdef DD_SOURCE_ROOT
  const std::size_t n = std::strlen(DD_SOURCE_ROOT);
  if (std::strncmp(file, DD_SOURCE_ROOT, n) == 0) return file + n;
#endif
  return file;
}
}  // namespace

void throw_error(const char* file, int line, const std::string& msg) {
  throw Error(str_cat(relative_source(file), ":", line, ": ", msg));
}

}  // namespace dd

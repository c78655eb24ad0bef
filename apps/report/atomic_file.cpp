#include "apps/report/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace dd::report {

std::string temp_path_for(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

void write_file_atomically(const std::string& path, const void* data, std::size_t size, const std::string& who) {
  const std::string tmp = temp_path_for(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  DD_CHECK(f, who, " '", path, "': cannot create '", tmp, "': ", std::strerror(errno));
  const bool wrote = size == 0 || std::fwrite(data, 1, size, f) == size;
  const int write_errno = errno;
  const bool closed = std::fclose(f) == 0;
  std::error_code ec;
  if (!wrote || !closed) {
    std::filesystem::remove(tmp, ec);
    DD_FAIL(who, " '", path, "': writing '", tmp, "' failed: ", std::strerror(wrote ? errno : write_errno));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    DD_FAIL(who, " '", path, "': cannot rename '", tmp, "' to it: ", ec.message());
  }
}

}  // namespace dd::report

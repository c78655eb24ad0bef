#include "engine/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace dd {

namespace {

std::string describe_errno(int err) {
  if (err == ENOSPC || err == EDQUOT) return "the disk is full (" + std::string(std::strerror(err)) + ")";
  return std::strerror(err);
}

// write(2) until done; false with errno set on failure.
bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

}  // namespace

std::string durable_temp_path(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

void write_file_durably(const std::string& path, const std::vector<std::pair<const void*, std::size_t>>& pieces,
                        const std::string& who) {
  const std::string tmp = durable_temp_path(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DD_CHECK(fd >= 0, who, " '", path, "': cannot create '", tmp, "': ", describe_errno(errno));
  int err = 0;
  const char* step = "writing";
  for (const auto& [data, size] : pieces) {
    if (!write_all(fd, static_cast<const char*>(data), size)) {
      err = errno;
      break;
    }
  }
  if (!err && ::fsync(fd) != 0) {
    err = errno;
    step = "syncing";
  }
  if (::close(fd) != 0 && !err) {
    err = errno;
    step = "closing";
  }
  if (err) {
    ::unlink(tmp.c_str());
    DD_FAIL(who, " '", path, "': ", step, " '", tmp, "' failed: ", describe_errno(err),
            "; the previous file (if any) is untouched");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    DD_FAIL(who, " '", path, "': cannot rename '", tmp, "' to it: ", describe_errno(err));
  }
  // The rename is durable once the directory entry is: fsync the directory (best effort on
  // filesystems that refuse it).
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace dd

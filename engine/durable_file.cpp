#include "engine/durable_file.h"

#include <fcntl.h>
#include <signal.h>
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

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const std::size_t at = name.rfind(".tmp-");
    if (at == std::string::npos || at + 5 == name.size()) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    // Alive (ours, or another process writing right now): leave it.
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code rm;
    if (std::filesystem::remove(e.path(), rm)) removed.push_back(e.path().string());
  }
  return removed;
}

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

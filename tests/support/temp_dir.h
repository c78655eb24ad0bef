#pragma once
// A fresh directory under the system temp dir for one test, removed with everything in it when the
// object goes away.
#include <cstddef>
#include <string>

namespace dd::test {

class TempDir {
 public:
  explicit TempDir(const std::string& tag = "dd_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  const std::string& str() const { return path_; }
  // path()/name, creating the parent folders of name.
  std::string file(const std::string& name) const;
  // Entries directly inside (to check that no temporary file was left behind).
  std::size_t entries() const;

 private:
  std::string path_;
};

}  // namespace dd::test

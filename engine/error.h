#pragma once
// Every failure in the engine throws dd::Error; the message names where it came
// from (file:line) and what was wrong (the op, the shapes, the failing call).
#include <sstream>
#include <stdexcept>
#include <string>

namespace dd {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);

}  // namespace dd

// DD_CHECK(cond, "conv2d: x ", shape_str(x), " ...") throws with file:line.
#define DD_CHECK(cond, ...)                                                         \
  do {                                                                              \
    if (!(cond)) ::dd::throw_error(__FILE__, __LINE__, ::dd::str_cat(__VA_ARGS__)); \
  } while (0)

#define DD_FAIL(...) ::dd::throw_error(__FILE__, __LINE__, ::dd::str_cat(__VA_ARGS__))

#include "engine/error.h"

namespace dd {

void throw_error(const char* file, int line, const std::string& msg) {
  throw Error(str_cat(file, ":", line, ": ", msg));
}

}  // namespace dd

#include "apps/report/atomic_file.h"

#include "engine/durable_file.h"

namespace dd::report {

std::string temp_path_for(const std::string& path) { return durable_temp_path(path); }

void write_file_atomically(const std::string& path, const void* data, std::size_t size, const std::string& who) {
  write_file_durably(path, {{data, size}}, who);
}

}  // namespace dd::report

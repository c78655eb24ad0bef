#pragma once
// Every file the apps produce is written to a temporary name beside its destination, fsync'ed and
// renamed over it (engine/durable_file.h), so a crash or a full disk never leaves a half-written
// image or log under the real name.
#include <cstddef>
#include <string>

namespace dd::report {

// Writes bytes to path atomically (temp + rename). Errors name `who` and the path.
void write_file_atomically(const std::string& path, const void* data, std::size_t size, const std::string& who);

// The temporary name used for path: unique per process, in the same directory (rename stays atomic).
std::string temp_path_for(const std::string& path);

}  // namespace dd::report

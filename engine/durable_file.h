#pragma once
// Writing a file so that neither a crash, a power cut nor a full disk loses what was there before:
// the bytes go to a temporary file beside the destination, which is fsync'ed, renamed over the
// destination, and the directory fsync'ed so the rename itself is on disk. On any failure the
// temporary file is removed and the destination is untouched; a full disk is said in those words.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace dd {

// pieces: (pointer, size) written in order. Errors name `who` and the path.
void write_file_durably(const std::string& path, const std::vector<std::pair<const void*, std::size_t>>& pieces,
                        const std::string& who);

// The temporary name used for path: unique per process, in the same directory (rename stays atomic).
std::string durable_temp_path(const std::string& path);

// Removes the temporary files (name.tmp-PID) that processes no longer alive left in dir when they
// were killed mid-write (SIGKILL, a power cut: no handler runs). Returns the paths removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

}  // namespace dd

#include "apps/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/error.h"

namespace dd::data {

namespace {
constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

std::string gz_error(gzFile f) {
  int code = Z_OK;
  const char* msg = gzerror(f, &code);
  return code == Z_OK || !msg ? std::string() : str_cat(" (zlib: ", msg, ")");
}

// Reads up to n bytes; returns how many were read (short only at the end of the data).
int64_t read_fully(gzFile f, unsigned char* dst, int64_t n, const std::string& path) {
  int64_t got = 0;
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(n - got, 1 << 30));
    const int r = gzread(f, dst + got, chunk);
    DD_CHECK(r >= 0, "IDX file ", path, ": read failed", gz_error(f));
    if (r == 0) break;
    got += r;
  }
  return got;
}
}  // namespace

Dataset load_idx_images(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  DD_CHECK(fs::is_regular_file(path, ec), "IDX file ", path, ": ",
           fs::exists(path, ec) ? "is not a regular file" : "does not exist");
  GzFile gz;
  gz.f = gzopen(path.c_str(), "rb");
  DD_CHECK(gz.f, "IDX file ", path, ": cannot open for reading");
  // A large buffer: the default 8 KiB makes inflating 47 MB noticeably slower.
  gzbuffer(gz.f, 1 << 20);

  // The magic first: a label file's header is shorter, and should be named as such.
  unsigned char header[16];
  const int64_t mgot = read_fully(gz.f, header, 4, path);
  DD_CHECK(mgot == 4, "IDX file ", path, ": truncated header (", mgot, " of 16 bytes)", gz_error(gz.f));
  const uint32_t magic = big_endian_u32(header);
  DD_CHECK(magic != kLabelsMagic, "IDX file ", path,
           ": is a label file (magic 0x00000801); expected an image file (idx3-ubyte, magic 0x00000803)");
  if (magic != kImagesMagic) {
    char hex[11];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    DD_FAIL("IDX file ", path, ": wrong magic ", hex, "; expected 0x00000803 (idx3-ubyte images)");
  }
  const int64_t hgot = 4 + read_fully(gz.f, header + 4, 12, path);
  DD_CHECK(hgot == 16, "IDX file ", path, ": truncated header (", hgot, " of 16 bytes)", gz_error(gz.f));
  const int64_t count = big_endian_u32(header + 4);
  const int64_t rows = big_endian_u32(header + 8);
  const int64_t cols = big_endian_u32(header + 12);
  DD_CHECK(count > 0 && rows > 0 && cols > 0, "IDX file ", path, ": header declares ", count, " images of ", rows,
           "x", cols, "; every dimension must be positive");
  // 2^16 per side bounds count*rows*cols well inside int64 and rejects garbage headers
  // before they turn into a huge allocation.
  DD_CHECK(rows <= 65536 && cols <= 65536, "IDX file ", path, ": implausible image size ", rows, "x", cols);
  // count < 2^32 and rows*cols <= 2^32 could still overflow int64 together (UBSan, found by
  // tests/fuzz/fuzz_idx.cpp in CI): no real file holds more than 2^40 pixel bytes.
  DD_CHECK(count <= (int64_t{1} << 40) / (rows * cols), "IDX file ", path, ": implausible size: the header declares ",
           count, " images of ", rows, "x", cols, " (more than 2^40 pixel bytes)");

  Dataset d;
  d.count = count;
  d.height = rows;
  d.width = cols;
  d.channels = 1;
  d.name = fs::path(path).filename().string();
  d.description = str_cat("IDX images from ", path);
  const int64_t need = count * rows * cols;
  // The buffer grows with the bytes actually read (64 MiB at a time): a header that claims more
  // than the file holds is reported as truncated instead of allocating what it claims (found by
  // tests/fuzz/fuzz_idx.cpp).
  int64_t got = 0;
  while (got < need) {
    const int64_t chunk = std::min<int64_t>(need - got, int64_t{64} << 20);
    d.pixels.resize(static_cast<std::size_t>(got + chunk));
    const int64_t r = read_fully(gz.f, d.pixels.data() + got, chunk, path);
    got += r;
    if (r < chunk) break;
  }
  DD_CHECK(got == need, "IDX file ", path, ": truncated: the header declares ", count, " images of ", rows, "x",
           cols, " (", need, " pixel bytes) but only ", got, " follow", gz_error(gz.f));
  unsigned char extra[4096];
  const int64_t trailing = read_fully(gz.f, extra, sizeof extra, path);
  DD_CHECK(trailing == 0, "IDX file ", path, ": ", trailing == int64_t{sizeof extra} ? "at least " : "", trailing,
           " bytes after the ", count, " images of ", rows, "x", cols,
           " the header declares; wrong record size or not an idx3-ubyte file");
  return d;
}

}  // namespace dd::data

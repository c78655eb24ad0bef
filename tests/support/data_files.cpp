#include "tests/support/data_files.h"

#include <stb_image_write.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <unistd.h>

namespace dd::test {

namespace fs = std::filesystem;

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("write_bytes: cannot write " + path);
}

std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out;
  auto put = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
  };
  put(magic);
  for (uint32_t d : dims) put(d);
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("write_gz: cannot open " + path);
  const int n = bytes.empty() ? 0 : gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  const int closed = gzclose(f);
  if (n != static_cast<int>(bytes.size()) || closed != Z_OK) throw std::runtime_error("write_gz: failed on " + path);
}

std::vector<uint8_t> cifar_bytes(const std::vector<uint8_t>& nhwc, const std::vector<uint8_t>& labels) {
  const std::size_t plane = 32 * 32;
  std::vector<uint8_t> out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out.push_back(labels[i]);
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t p = 0; p < plane; ++p) out.push_back(nhwc[(i * plane + p) * 3 + ch]);
  }
  return out;
}

void write_png(const std::string& path, int h, int w, int c, const std::vector<uint8_t>& pixels) {
  if (!stbi_write_png(path.c_str(), w, h, c, pixels.data(), w * c))
    throw std::runtime_error("write_png: cannot write " + path);
}

}  // namespace dd::test

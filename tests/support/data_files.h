#pragma once
// Writers of small dataset files in every format apps/data reads, and a temporary
// directory that removes itself, for the data-loader tests.
#include <cstdint>
#include <string>

#include "tests/support/temp_dir.h"
#include <vector>

namespace dd::test {

// A fresh directory under temp_directory_path(), removed with everything in it on destruction.

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
// The IDX header {magic, dims...} (big-endian) followed by pixels; gzip-compressed when gz.
std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& pixels);
void write_gz(const std::string& path, const std::vector<uint8_t>& bytes);
// CIFAR-10 binary records from NHWC [n, 32, 32, 3] pixels: label, then the R, G and B planes.
std::vector<uint8_t> cifar_bytes(const std::vector<uint8_t>& nhwc, const std::vector<uint8_t>& labels);
// A PNG of h x w pixels with c (1..4) interleaved channels, through stb_image_write.
void write_png(const std::string& path, int h, int w, int c, const std::vector<uint8_t>& pixels);

}  // namespace dd::test

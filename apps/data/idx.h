#pragma once
// MNIST / Fashion-MNIST image files in the IDX format ("idx3-ubyte"):
// a big-endian header {magic 0x00000803, count, rows, cols} followed by
// count*rows*cols pixel bytes, row-major, 0 = background. Read through zlib,
// which takes gzip-compressed and raw files alike.
#include <string>

#include "apps/data/dataset.h"

namespace dd::data {

// All images of the file as [count, rows, cols, 1]. Throws naming the file when it is
// missing, not gzip/IDX, a label file (0x00000801), truncated or has trailing bytes.
Dataset load_idx_images(const std::string& path);

}  // namespace dd::data

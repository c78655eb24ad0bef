#include "apps/data/cifar10.h"

#include <filesystem>
#include <fstream>

#include "engine/error.h"

namespace dd::data {

namespace fs = std::filesystem;

std::vector<std::string> cifar10_batch_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (int k = 1; k <= 5; ++k) {
    fs::path p = fs::path(dir) / str_cat("data_batch_", k, ".bin");
    if (fs::is_regular_file(p, ec)) files.push_back(p.string());
  }
  return files;
}

Dataset load_cifar10(const std::string& dir) {
  std::error_code ec;
  DD_CHECK(fs::is_directory(dir, ec), "CIFAR-10 folder ", dir, ": ",
           fs::exists(dir, ec) ? "is not a directory" : "does not exist");
  std::vector<std::string> files = cifar10_batch_files(dir);
  DD_CHECK(!files.empty(), "CIFAR-10 folder ", dir,
           ": holds none of data_batch_1.bin .. data_batch_5.bin (the binary version of CIFAR-10)");
  Dataset d = load_cifar10_files(files);
  d.name = "cifar10";
  d.description = str_cat("CIFAR-10 from ", dir, " (", files.size(), " of 5 training batches)");
  return d;
}

Dataset load_cifar10_files(const std::vector<std::string>& files) {
  DD_CHECK(!files.empty(), "load_cifar10_files: no files given");
  // Sizes first, so one allocation holds everything and a bad file fails before any read.
  std::vector<int64_t> records;
  int64_t total = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    DD_CHECK(fs::is_regular_file(f, ec), "CIFAR-10 file ", f, ": ",
             fs::exists(f, ec) ? "is not a regular file" : "does not exist");
    const auto bytes = static_cast<int64_t>(fs::file_size(f, ec));
    DD_CHECK(!ec, "CIFAR-10 file ", f, ": cannot read its size: ", ec.message());
    DD_CHECK(bytes > 0 && bytes % kCifarRecord == 0, "CIFAR-10 file ", f, ": ", bytes,
             " bytes is not a positive whole number of ", kCifarRecord,
             "-byte records (1 label + 3x32x32 pixels); truncated or not a CIFAR-10 binary batch");
    records.push_back(bytes / kCifarRecord);
    total += records.back();
  }

  Dataset d;
  d.name = "cifar10";
  d.count = total;
  d.height = d.width = kCifarSide;
  d.channels = 3;
  d.pixels.resize(static_cast<std::size_t>(total * d.image_bytes()));
  const int64_t plane = kCifarSide * kCifarSide;
  std::vector<unsigned char> raw;
  int64_t first = 0;
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const int64_t bytes = records[fi] * kCifarRecord;
    raw.resize(static_cast<std::size_t>(bytes));
    std::ifstream in(files[fi], std::ios::binary);
    DD_CHECK(in, "CIFAR-10 file ", files[fi], ": cannot open for reading");
    in.read(reinterpret_cast<char*>(raw.data()), bytes);
    DD_CHECK(in.gcount() == bytes, "CIFAR-10 file ", files[fi], ": read ", in.gcount(), " of ", bytes,
             " bytes (changed while reading?)");
    // Planar RGB -> interleaved (NHWC); the label byte leads each record.
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < records[fi]; ++r) {
      const unsigned char* rec = raw.data() + r * kCifarRecord + 1;
      uint8_t* dst = d.image(first + r);
      for (int64_t p = 0; p < plane; ++p) {
        dst[3 * p] = rec[p];
        dst[3 * p + 1] = rec[plane + p];
        dst[3 * p + 2] = rec[2 * plane + p];
      }
    }
    first += records[fi];
  }
  std::string list;
  for (const std::string& f : files) list += (list.empty() ? "" : ", ") + f;
  d.description = str_cat("CIFAR-10 from ", list);
  return d;
}

}  // namespace dd::data

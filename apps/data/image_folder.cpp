#include "apps/data/image_folder.h"

#include <stb_image.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "apps/data/resample.h"
#include "engine/error.h"

namespace dd::data {

namespace fs = std::filesystem;

namespace {
constexpr int64_t kMaxPixels = int64_t{1} << 26;  // 8192 x 8192

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown reason";
}

// The first failure in file order, so the message does not depend on thread timing.
void throw_first(const std::vector<std::string>& errors) {
  for (const std::string& e : errors)
    if (!e.empty()) DD_FAIL(e);
}

Dataset load_folder(const std::string& dir, int64_t image_size, int64_t channels);
}  // namespace

bool read_image_header(const std::string& path, ImageHeader& header) {
  int w = 0, h = 0, c = 0;
  if (!stbi_info(path.c_str(), &w, &h, &c)) return false;
  // A signed product let a 1287 x -458746 BMP past the pixel limit into a 1.7 GB decode (found by
  // tests/fuzz/fuzz_image_folder.cpp): the limits are checked on magnitudes.
  header.width = std::abs(static_cast<int64_t>(w));
  header.height = std::abs(static_cast<int64_t>(h));
  header.channels = c;
  return true;
}

std::vector<std::string> image_folder_files(const std::string& dir) {
  std::error_code ec;
  DD_CHECK(fs::is_directory(dir, ec), "image folder ", dir, ": ",
           fs::exists(dir, ec) ? "is not a directory" : "does not exist");
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(dir, ec), end;
  DD_CHECK(!ec, "image folder ", dir, ": cannot list: ", ec.message());
  for (; it != end; it.increment(ec)) {
    DD_CHECK(!ec, "image folder ", dir, ": cannot list: ", ec.message());
    const fs::path& p = it->path();
    if (hidden(p)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(fs::relative(p, dir, ec).generic_string());
  }
  DD_CHECK(!ec, "image folder ", dir, ": cannot list: ", ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

Dataset load_image_folder(const std::string& dir, int64_t image_size, int64_t channels) {
  DD_CHECK(image_size > 0, "image folder ", dir, ": needs an image size > 0 (got ", image_size,
           "): its images may all differ in size");
  return load_folder(dir, image_size, channels);
}

Dataset load_image_folder_as_is(const std::string& dir, int64_t channels) { return load_folder(dir, 0, channels); }

namespace {
// image_size 0: every image kept at its own size, which must be the first file's.
Dataset load_folder(const std::string& dir, int64_t image_size, int64_t channels) {
  DD_CHECK(channels <= 0 || channels == 1 || channels == 3, "image folder ", dir, ": ", channels,
           " channels requested; expected 1 (grayscale) or 3 (RGB)");
  const std::vector<std::string> files = image_folder_files(dir);
  DD_CHECK(!files.empty(), "image folder ", dir, ": is empty (no image files in it or its subfolders)");
  const auto n = static_cast<int64_t>(files.size());
  auto full = [&](int64_t i) { return (fs::path(dir) / files[static_cast<std::size_t>(i)]).string(); };
  std::vector<std::string> errors(files.size());

  int64_t out_c = channels;
  if (out_c <= 0) {
    // Headers only: a grayscale folder stays one channel, anything with colour becomes RGB.
    std::vector<int> comps(files.size(), 0);
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < n; ++i) {
      ImageHeader header;
      if (read_image_header(full(i), header))
        comps[static_cast<std::size_t>(i)] = header.channels;
      else
        errors[static_cast<std::size_t>(i)] = str_cat("image folder ", dir, ": cannot decode ", full(i), ": ",
                                                      stb_reason());
    }
    throw_first(errors);
    out_c = std::any_of(comps.begin(), comps.end(), [](int c) { return c >= 3; }) ? 3 : 1;
  }

  Dataset d;
  d.name = fs::path(dir).filename().string();
  if (d.name.empty()) d.name = fs::path(dir).parent_path().filename().string();
  d.count = n;
  d.height = d.width = image_size;
  d.channels = out_c;
  d.description = str_cat("image folder ", dir, " (", n, " files), center-cropped and resized to ", image_size, "x",
                          image_size, ", ", out_c, " channels");
  if (image_size == 0) {
    ImageHeader first;
    DD_CHECK(read_image_header(full(0), first), "image folder ", dir, ": cannot decode ", full(0), ": ", stb_reason());
    // A corrupt header can state a size of 0 (found by tests/fuzz/fuzz_image_folder.cpp).
    DD_CHECK(first.pixels() > 0 && first.pixels() <= kMaxPixels, "image folder ", dir, ": ", full(0), " is ",
             first.width, "x", first.height, ": not a size an image may have (1 to ", kMaxPixels, " pixels)");
    d.height = first.height;
    d.width = first.width;
    d.description = str_cat("image folder ", dir, " (", n, " files) at their own size ", d.width, "x", d.height,
                            ", ", out_c, " channels");
  }
  d.pixels.resize(static_cast<std::size_t>(n * d.image_bytes()));
#pragma omp parallel
  {
    std::vector<float> scratch;
#pragma omp for schedule(dynamic, 4)
    for (int64_t i = 0; i < n; ++i) {
      const std::string path = full(i);
      // The header first: a file claiming a huge image is refused before anything is allocated.
      ImageHeader header;
      if (read_image_header(path, header) && header.pixels() > kMaxPixels) {
        errors[static_cast<std::size_t>(i)] = str_cat("image folder ", dir, ": ", path, " is ", header.width, "x",
                                                      header.height, ", more than the ", kMaxPixels,
                                                      " pixels an image may have");
        continue;
      }
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load(path.c_str(), &w, &h, &c, 0);
      if (!px) {
        errors[static_cast<std::size_t>(i)] = str_cat("image folder ", dir, ": cannot decode ", path, ": ",
                                                      stb_reason());
        continue;
      }
      try {
        if (image_size == 0)
          DD_CHECK(h == d.height && w == d.width, "image folder ", dir, ": ", path, " is ", w, "x", h, " but ",
                   full(0), " is ", d.width, "x", d.height, "; every image must have the same size");
        Resampler(h, w, image_size).run(px, c, out_c, d.image(i), scratch);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = str_cat("image folder ", dir, ": ", path, ": ", e.what());
      }
      stbi_image_free(px);
    }
  }
  throw_first(errors);
  return d;
}
}  // namespace

}  // namespace dd::data

#include "apps/data/open_dataset.h"

#include <filesystem>

#include "apps/data/cifar10.h"
#include "apps/data/idx.h"
#include "apps/data/image_folder.h"
#include "apps/data/resample.h"
#include "engine/error.h"

namespace dd::data {

namespace fs = std::filesystem;

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The names MNIST-style downloads use for the training images (the dotted one is the
// original MNIST site's spelling after some unpackers).
constexpr const char* kIdxTrainNames[] = {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                                          "train-images.idx3-ubyte.gz", "train-images.idx3-ubyte"};
}  // namespace

DatasetSource resolve_dataset(const std::string& spec) {
  const std::string path = spec.empty() ? std::string(kDefaultDatasetDir) : spec;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    DD_FAIL("dataset ", path, spec.empty() ? " (the default Fashion-MNIST location)" : "",
            ": does not exist; give a Fashion-MNIST/MNIST IDX file or folder, a CIFAR-10 binary folder or a "
            "folder of images");
  }
  if (fs::is_regular_file(path, ec)) {
    if (ends_with(path, ".bin")) return {DatasetKind::Cifar10, path};
    return {DatasetKind::Idx, path};
  }
  DD_CHECK(fs::is_directory(path, ec), "dataset ", path, ": is neither a regular file nor a folder");
  for (const char* name : kIdxTrainNames) {
    const fs::path p = fs::path(path) / name;
    if (fs::is_regular_file(p, ec)) return {DatasetKind::Idx, p.string()};
  }
  if (!cifar10_batch_files(path).empty()) return {DatasetKind::Cifar10, path};
  return {DatasetKind::ImageFolder, path};
}

Dataset open_dataset(const std::string& spec, int image_size, int channels) {
  DD_CHECK(channels <= 0 || channels == 1 || channels == 3, "dataset ", spec, ": ", channels,
           " channels requested; expected 1 (grayscale) or 3 (RGB)");
  const DatasetSource src = resolve_dataset(spec);
  Dataset d;
  switch (src.kind) {
    case DatasetKind::Idx: {
      d = load_idx_images(src.path);
      const fs::path parent = fs::path(src.path).parent_path();
      // Name the set after its folder ("fashion-mnist"), the file name says only "train-images".
      if (!parent.empty() && fs::path(src.path).filename().string().rfind("train-images", 0) == 0)
        d.name = parent.filename().string();
      break;
    }
    case DatasetKind::Cifar10:
      d = fs::is_directory(src.path) ? load_cifar10(src.path) : load_cifar10_files({src.path});
      break;
    case DatasetKind::ImageFolder:
      // Decoding resizes each image straight to its final size; nothing left to conform.
      return load_image_folder(src.path, image_size, channels);
  }
  return conform(std::move(d), image_size, channels);
}

}  // namespace dd::data

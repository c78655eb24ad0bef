#pragma once
// One entry point from a command-line --data value to a Dataset at the size and
// channel count the model trains on.
#include <string>

#include "apps/data/dataset.h"

namespace dd::data {

// Where Fashion-MNIST lives on our machines; the default training set is its
// train-images-idx3-ubyte.gz (60000 x 28 x 28 x 1).
constexpr const char* kDefaultDatasetDir = "/usr/share/datasets/fashion-mnist";

// What a spec names, decided from the filesystem alone (nothing is decoded):
//  ""                                         -> Fashion-MNIST train images in kDefaultDatasetDir
//  a regular file ending in .bin              -> one CIFAR-10 binary batch
//  any other regular file (.gz, idx3-ubyte..) -> IDX images
//  a folder with train-images-idx3-ubyte[.gz] (or train-images.idx3-ubyte) -> that IDX file
//  a folder with data_batch_<1..5>.bin        -> CIFAR-10
//  any other folder                           -> image folder
enum class DatasetKind { Idx, Cifar10, ImageFolder };
struct DatasetSource {
  DatasetKind kind;
  std::string path;  // the IDX file, the CIFAR-10 folder or batch file, the image folder
};
DatasetSource resolve_dataset(const std::string& spec);

// Loads what the spec names and conforms it: a stored size other than image_size is
// center-cropped to a square and resized; a channel count other than channels is
// converted (gray -> RGB replicates, RGB -> gray is 0.299 R + 0.587 G + 0.114 B).
// image_size <= 0 / channels <= 0 keep the dataset's own (an image folder needs image_size).
Dataset open_dataset(const std::string& spec, int image_size, int channels);

}  // namespace dd::data

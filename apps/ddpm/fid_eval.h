#pragma once
// FID from the command line's point of view: what a --gen / --ref / --data value names, turned into
// statistics (models/fid_stats.h) through pytorch-fid's Inception-v3 (models/inception.h).
//
// A spec names either statistics or images:
//   - a .npz file (pytorch-fid's statistics) or a .safetensors file holding "mu" and "sigma";
//   - a dataset as train_ddpm's --data reads it (IDX, CIFAR-10) at its own size;
//   - a folder of image files (PNG, JPEG, ...) at their own size, which must be the same for all.
// Images are read as pytorch-fid reads them: 8-bit values / 255, grayscale replicated to RGB, alpha
// dropped; then resized to 299x299 inside the network.
#include <cstdio>
#include <string>

#include "apps/data/dataset.h"
#include "engine/tensor.h"
#include "models/fid_stats.h"
#include "models/inception.h"

namespace dd::ddpm {

struct FidRunOptions {
  int batch_size = 50;  // pytorch-fid's default
  bool show_progress = true;
  std::FILE* progress_out = stderr;
};

// True when spec is a statistics file (no network needed).
bool is_stats_file(const std::string& spec);
// True when spec is a model to sample from: a run folder (its model.safetensors), a diffusers folder, or
// a .safetensors file that is not statistics.
bool is_model_spec(const std::string& spec);

// Adds the Inception features of every image of d (uint8 NHWC) to stats, in batches.
void add_dataset_features(const fid::InceptionV3& net, const data::Dataset& d, fid::FeatureStats& stats,
                          const FidRunOptions& opt, const std::string& label = "fid");

// Adds the features of samples [B, H, W, C] in [-1, 1] (any device), quantized to 8 bits as a PNG of them
// would be (fid::quantize_like_png), so the score equals that of the same samples written out and read back.
void add_sample_features(const fid::InceptionV3& net, const Tensor& samples, fid::FeatureStats& stats,
                         int batch_size);

// The images a spec names (dataset or image folder), as read for FID. Throws for a statistics file.
data::Dataset load_fid_images(const std::string& spec);

// Statistics for a spec: loaded from a statistics file, else computed from its images with net (which
// must then be non-null). *what (optional) describes the source for logs.
fid::FidStats stats_for(const std::string& spec, const fid::InceptionV3* net, const FidRunOptions& opt,
                        std::string* what = nullptr);

}  // namespace dd::ddpm

#include "apps/ddpm/fid_eval.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "apps/data/image_folder.h"
#include "apps/data/open_dataset.h"
#include "apps/report/progress.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/diffusers_folder.h"

namespace dd::ddpm {
namespace fs = std::filesystem;

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// uint8 images [first, first + n) of d as floats / 255 (torchvision's ToTensor).
Tensor to_unit(const data::Dataset& d, int64_t first, int64_t n) {
  Tensor x = Tensor::empty({n, d.height, d.width, d.channels});
  const uint8_t* src = d.image(first);
  float* dst = x.data();
  const int64_t total = n * d.image_bytes();
  for (int64_t i = 0; i < total; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
  return x;
}

void add_rows(fid::FeatureStats& stats, const Tensor& features) {
  const Tensor host = features.to(Device::CPU);
  stats.add(host.data(), host.shape()[0]);
}
}  // namespace

bool is_stats_file(const std::string& spec) {
  std::error_code ec;
  if (!fs::is_regular_file(spec, ec)) return false;
  if (ends_with(spec, ".npz")) return true;
  if (!ends_with(spec, ".safetensors")) return false;
  const SafeTensorsFile f = load_safetensors(spec);
  return f.contains("mu") && f.contains("sigma");
}

bool is_model_spec(const std::string& spec) {
  std::error_code ec;
  if (fs::is_directory(spec, ec))
    return fs::exists(fs::path(spec) / "model.safetensors", ec) || models::is_diffusers_folder(spec);
  return fs::is_regular_file(spec, ec) && ends_with(spec, ".safetensors") && !is_stats_file(spec);
}

void add_dataset_features(const fid::InceptionV3& net, const data::Dataset& d, fid::FeatureStats& stats,
                          const FidRunOptions& opt, const std::string& label) {
  DD_CHECK(opt.batch_size > 0, "FID: the batch size must be positive, got ", opt.batch_size);
  std::unique_ptr<report::Progress> progress;
  if (opt.show_progress) progress = std::make_unique<report::Progress>(d.count, label, opt.progress_out);
  for (int64_t first = 0; first < d.count; first += opt.batch_size) {
    const int64_t n = std::min<int64_t>(opt.batch_size, d.count - first);
    add_rows(stats, net.features(to_unit(d, first, n)));
    if (progress) progress->update(first + n, "images");
  }
  if (progress) progress->finish();
}

void add_sample_features(const fid::InceptionV3& net, const Tensor& samples, fid::FeatureStats& stats,
                         int batch_size) {
  DD_CHECK(batch_size > 0, "FID: the batch size must be positive, got ", batch_size);
  const Tensor q = fid::quantize_like_png(samples);
  const Shape& s = q.shape();
  const int64_t per = s[1] * s[2] * s[3];
  for (int64_t first = 0; first < s[0]; first += batch_size) {
    const int64_t n = std::min<int64_t>(batch_size, s[0] - first);
    Tensor part = Tensor::empty({n, s[1], s[2], s[3]});
    std::copy(q.data() + first * per, q.data() + (first + n) * per, part.data());
    add_rows(stats, net.features(part));
  }
}

data::Dataset load_fid_images(const std::string& spec) {
  DD_CHECK(!is_stats_file(spec), "FID: ", spec, " holds statistics, not images");
  const data::DatasetSource src = data::resolve_dataset(spec);
  // An image folder keeps each image's own size (no crop); RGB as PIL's convert('RGB') gives it.
  data::Dataset d = src.kind == data::DatasetKind::ImageFolder ? data::load_image_folder_as_is(src.path, 3)
                                                                : data::open_dataset(spec, 0, 0);
  d.validate();
  return d;
}

fid::FidStats stats_for(const std::string& spec, const fid::InceptionV3* net, const FidRunOptions& opt,
                        std::string* what) {
  if (is_stats_file(spec)) {
    fid::FidStats s = fid::load_stats(spec);
    if (what) *what = str_cat("statistics ", spec, " (", s.count > 0 ? std::to_string(s.count) : "?", " images)");
    return s;
  }
  DD_CHECK(net != nullptr, "FID: ", spec, " names images, which need the Inception weights (--inception)");
  const data::Dataset d = load_fid_images(spec);
  if (what) *what = d.description;
  fid::FeatureStats acc(fid::kFeatureDim);
  add_dataset_features(*net, d, acc, opt, fs::path(spec).filename().string());
  fid::FidStats s = fid::finalize(acc);
  s.metadata["source"] = spec;
  return s;
}

}  // namespace dd::ddpm

#include "apps/ddpm/train_fid.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "apps/ddpm/fid_eval.h"
#include "apps/report/atomic_file.h"
#include "apps/report/loss_curve.h"
#include "autograd/var.h"
#include "engine/error.h"
#include "engine/safetensors.h"

namespace dd::ddpm {
namespace fs = std::filesystem;

namespace {
constexpr const char* kCsvHeader = "step,fid,samples,seconds";

struct FidRow {
  int64_t step;
  std::string line;
};

// The rows of fid.csv (a missing file has none); an incomplete last line (a killed write) is dropped.
std::vector<FidRow> read_rows(const std::string& path) {
  std::vector<FidRow> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream ss(text);
  std::string line;
  bool header = true;
  std::size_t consumed = 0;
  while (std::getline(ss, line)) {
    consumed += line.size() + 1;
    if (consumed > text.size()) break;  // no newline: an interrupted append
    if (header) {
      DD_CHECK(line == kCsvHeader, path, ": not a FID log (header '", line, "', expected '", kCsvHeader, "')");
      header = false;
      continue;
    }
    rows.push_back({std::stoll(line.substr(0, line.find(','))), line});
  }
  return rows;
}

void write_rows(const std::string& path, const std::vector<FidRow>& rows) {
  std::string text = std::string(kCsvHeader) + "\n";
  for (const FidRow& r : rows) text += r.line + "\n";
  report::write_file_atomically(path, text.data(), text.size(), "train_ddpm fid.csv");
}
}  // namespace

TrainFid::TrainFid(const TrainOptions& opts, const std::string& run_dir, const data::Dataset& training_set, Device dev,
                   int64_t resume_step, std::FILE* log)
    : every_(opts.fid_every), samples_(opts.fid_samples), batch_(opts.fid_batch), seed_(opts.seed + 1),
      dir_(run_dir), log_(log) {
  DD_CHECK(every_ > 0, "TrainFid needs --fid-every > 0");
  DD_CHECK(!opts.fid_inception.empty(), "--fid-every needs --fid-inception (pytorch-fid's weights converted by "
                                        "scripts/convert_inception.py)");
  DD_CHECK(samples_ >= 2, "--fid-samples must be at least 2 (a covariance needs two samples), got ", samples_);
  DD_CHECK(batch_ > 0, "--fid-batch must be positive, got ", batch_);
  net_.emplace(fid::InceptionV3::load(opts.fid_inception, dev));
  if (!net_->official())
    std::fprintf(log_, "warning: %s is not pytorch-fid's published Inception: these FIDs are not comparable with "
                       "published ones\n", opts.fid_inception.c_str());
  ag::NoGrad no_grad;
  FidRunOptions ro;
  ro.progress_out = log_;
  if (!opts.fid_ref.empty() && is_stats_file(opts.fid_ref)) {
    ref_ = fid::load_stats(opts.fid_ref);
    std::fprintf(log_, "FID reference: %s (%lld images)\n", opts.fid_ref.c_str(), static_cast<long long>(ref_.count));
  } else {
    // Images: their statistics are cached under the run folder, keyed by where they came from.
    const std::string cache = run_dir + "/fid_ref.safetensors";
    const std::string source = opts.fid_ref.empty() ? "training data: " + training_set.description : opts.fid_ref;
    std::error_code ec;
    bool cached = false;
    if (fs::exists(cache, ec)) {
      fid::FidStats s = fid::load_stats(cache);
      auto it = s.metadata.find("source");
      auto inc = s.metadata.find("inception");
      if (it != s.metadata.end() && it->second == source && inc != s.metadata.end() && inc->second == opts.fid_inception) {
        ref_ = std::move(s);
        cached = true;
      }
    }
    if (!cached) {
      std::fprintf(log_, "FID reference: computing the statistics of %s\n", source.c_str());
      if (opts.fid_ref.empty()) {
        fid::FeatureStats acc(fid::kFeatureDim);
        add_dataset_features(*net_, training_set, acc, ro, "fid ref");
        ref_ = fid::finalize(acc);
      } else {
        ref_ = stats_for(opts.fid_ref, &*net_, ro);
      }
      ref_.metadata["source"] = source;
      ref_.metadata["inception"] = opts.fid_inception;
      fid::save_stats(cache, ref_);
    }
    std::fprintf(log_, "FID reference: %s (%lld images%s)\n", source.c_str(), static_cast<long long>(ref_.count),
                 cached ? ", cached in fid_ref.safetensors" : "");
  }
  std::vector<FidRow> rows = read_rows(csv_path());
  std::vector<FidRow> keep;
  for (FidRow& r : rows)
    if (r.step <= resume_step) keep.push_back(std::move(r));
  write_rows(csv_path(), keep);
}

double TrainFid::evaluate(models::Denoiser& model, const models::GaussianDiffusion& diffusion, SampleRequest req,
                          int64_t step) {
  ag::NoGrad no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  fid::FeatureStats acc(fid::kFeatureDim);
  req.n = samples_;
  req.batch_size = batch_;
  req.seed = seed_;
  req.keep_images = false;
  req.trajectory_frames = 0;
  req.first_batch = 0;
  req.progress_out = log_;
  const fid::InceptionV3& net = *net_;
  req.on_batch = [&](int64_t, const Tensor& images) { add_sample_features(net, images, acc, 50); };
  sample_images(model, diffusion, req);
  const double d = fid::frechet_distance(fid::finalize(acc), ref_);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char line[160];
  std::snprintf(line, sizeof line, "%lld,%.6f,%d,%.1f", static_cast<long long>(step), d, samples_, secs);
  std::vector<FidRow> rows = read_rows(csv_path());
  rows.push_back({step, line});
  write_rows(csv_path(), rows);
  std::vector<std::pair<int64_t, double>> pts;
  for (const FidRow& r : rows) pts.emplace_back(r.step, std::stod(r.line.substr(r.line.find(',') + 1)));
  if (pts.size() >= 2) {
    report::LossCurveOptions o;
    o.title = "FID (" + std::to_string(samples_) + " samples)";
    o.smoothing = 0.0;
    report::write_loss_curve(curve_path(), pts, o);
  }
  std::fprintf(log_, "FID at step %lld: %.4f (%d samples, %.1f s)\n", static_cast<long long>(step), d, samples_, secs);
  return d;
}

}  // namespace dd::ddpm

#include "apps/ddpm/fid_commands.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/ddpm/fid_eval.h"
#include "apps/ddpm/sampling_model.h"
#include "autograd/var.h"
#include "engine/context.h"
#include "engine/error.h"
#include "kernels/conv_autotune.h"

namespace dd::ddpm {
namespace fs = std::filesystem;

namespace {
// Below this many images FID is strongly biased upward (published CIFAR-10 numbers use 50,000).
constexpr int64_t kFewImages = 10000;

void warn_inception(const fid::InceptionV3& net) {
  if (!net.official())
    std::fprintf(stderr,
                 "warning: %s was not converted from pytorch-fid's pt_inception-2015-12-05-6726825d.pth: these FIDs "
                 "are not comparable with published ones\n",
                 net.source().c_str());
}

void warn_count(const char* which, int64_t count) {
  if (count < kFewImages)
    std::fprintf(stderr,
                 "warning: the %s set has %lld images: FID from fewer than %lld is biased upward (published numbers "
                 "use 50,000); compare only scores computed from the same counts\n",
                 which, static_cast<long long>(count), static_cast<long long>(kFewImages));
}

// The statistics of n images sampled from a model, streamed batch by batch into the features.
fid::FidStats sample_stats(const FidCommand& c, const fid::InceptionV3& net, Device dev, std::string* what) {
  SamplingModel m = open_sampling_model(c.gen, dev);
  std::fprintf(stderr, "%s\n", m.describe(c.gen, dev).c_str());
  SampleRequest req;
  req.n = c.n;
  req.image_size = m.cfg.diffusion.image_size;
  req.batch_size = c.sample_batch;
  req.seed = c.seed;
  req.device = dev;
  req.cuda_graphs = dev == Device::CUDA;
  req.keep_images = false;
  apply_sampler_flags(c.flags, m, req);
  fid::FeatureStats acc(fid::kFeatureDim);
  req.on_batch = [&](int64_t, const Tensor& images) { add_sample_features(net, images, acc, c.batch_size); };
  sample_images(*m.model.net, *m.diffusion, req);
  *what = str_cat(c.n, " samples of ", c.gen, " (", c.flags.sampler, ", seed ", c.seed, ")");
  fid::FidStats s = fid::finalize(acc);
  s.metadata["source"] = *what;
  return s;
}
}  // namespace

CLI::App* FidCommand::add_to(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "fid", "Frechet Inception Distance between generated images and a reference, as pytorch-fid computes it");
  sub->add_option("--inception", inception,
                  "pytorch-fid's Inception-v3 converted by scripts/convert_inception.py (needed unless both sets "
                  "are statistics files)");
  sub->add_option("--gen", gen,
                  "generated images: a folder of image files, a statistics file (.npz or .safetensors), or a model "
                  "(weights file, run folder, diffusers folder) to sample --n images from")
      ->required();
  sub->add_option("--ref", ref,
                  "reference: a statistics file (ddpm_tool fid-stats, or pytorch-fid's .npz), a dataset (as "
                  "train_ddpm --data) or a folder of image files")
      ->required();
  sub->add_option("--batch-size", batch_size, "images through Inception at once")->capture_default_str();
  sub->add_option("--device", device, "cpu, cuda or auto")->capture_default_str();
  sub->add_option("--save-gen-stats", save_gen_stats, "also save the generated set's statistics (.safetensors or .npz)");
  sub->add_option("--save-ref-stats", save_ref_stats, "also save the reference's statistics (.safetensors or .npz)");
  sub->add_option("--n", n, "images to sample when --gen is a model")->capture_default_str();
  sub->add_option("--sample-batch", sample_batch, "images denoised at once when --gen is a model")->capture_default_str();
  sub->add_option("--seed", seed, "noise seed when --gen is a model")->capture_default_str();
  sub->add_option("--precision", precision,
                  "fp32, tf32 or bf16: the sampling's precision when --gen is a model (Inception is fp32 always)")
      ->capture_default_str();
  sub->add_flag("--conv-autotune", conv_autotune,
                "the sampling's tensor-core convolutions (tf32, bf16 on CUDA) autotuned per shape (as sample_ddpm's)");
  flags.add_to(*sub);
  return sub;
}

int FidCommand::run() const {
  current_context().set_precision(parse_precision(precision));
  kernels::set_conv_autotune(conv_autotune);
  const Device dev = resolve_device(device);
  DD_CHECK(batch_size > 0, "--batch-size must be positive, got ", batch_size);
  std::error_code ec;
  DD_CHECK(fs::exists(gen, ec), "--gen ", gen, ": does not exist");
  DD_CHECK(fs::exists(ref, ec), "--ref ", ref, ": does not exist");
  const bool gen_model = is_model_spec(gen);
  const bool need_net = gen_model || !is_stats_file(gen) || !is_stats_file(ref);
  DD_CHECK(!need_net || !inception.empty(),
           "--inception is needed: ", gen_model ? "--gen is a model" : "a set is given as images",
           " (convert pytorch-fid's weights with scripts/convert_inception.py)");
  DD_CHECK(!gen_model || n >= 2, "--n must be at least 2 (a covariance needs two samples), got ", n);
  std::optional<fid::InceptionV3> net;
  if (need_net) {
    net.emplace(fid::InceptionV3::load(inception, dev));
    warn_inception(*net);
  }
  ag::NoGrad no_grad;
  FidRunOptions opt;
  opt.batch_size = batch_size;
  const auto t0 = std::chrono::steady_clock::now();
  std::string gen_what, ref_what;
  const fid::FidStats g = gen_model ? sample_stats(*this, *net, dev, &gen_what) : stats_for(gen, net ? &*net : nullptr, opt, &gen_what);
  const fid::FidStats r = stats_for(ref, net ? &*net : nullptr, opt, &ref_what);
  if (!save_gen_stats.empty()) fid::save_stats(save_gen_stats, g);
  if (!save_ref_stats.empty()) fid::save_stats(save_ref_stats, r);
  const double d = fid::frechet_distance(g, r);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "gen: %s\nref: %s\n", gen_what.c_str(), ref_what.c_str());
  if (g.count > 0) warn_count("generated", g.count);
  if (r.count > 0) warn_count("reference", r.count);
  std::fprintf(stderr, "%.1f s on %s\n", secs, device_name(dev));
  std::printf("FID: %.6f\n", d);
  return 0;
}

CLI::App* FidStatsCommand::add_to(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("fid-stats", "Inception statistics (mu, sigma) of a dataset or image folder, "
                                                  "saved for ddpm_tool fid --ref");
  sub->add_option("--inception", inception, "Inception weights (scripts/convert_inception.py)")->required();
  sub->add_option("--data", data, "a dataset (as train_ddpm --data) or a folder of image files")->required();
  sub->add_option("--out", out, "statistics file to write: .safetensors, or .npz (pytorch-fid's format)")->required();
  sub->add_option("--batch-size", batch_size, "images through Inception at once")->capture_default_str();
  sub->add_option("--device", device, "cpu, cuda or auto")->capture_default_str();
  return sub;
}

int FidStatsCommand::run() const {
  const Device dev = resolve_device(device);
  std::error_code ec;
  DD_CHECK(fs::exists(data, ec), "--data ", data, ": does not exist");
  const std::string ext = fs::path(out).extension().string();
  DD_CHECK(ext == ".safetensors" || ext == ".npz", "--out ", out,
           ": the statistics file must end in .safetensors or .npz");
  const fid::InceptionV3 net = fid::InceptionV3::load(inception, dev);
  warn_inception(net);
  ag::NoGrad no_grad;
  FidRunOptions opt;
  opt.batch_size = batch_size;
  std::string what;
  fid::FidStats s = stats_for(data, &net, opt, &what);
  s.metadata["inception_official"] = net.official() ? "true" : "false";
  fid::save_stats(out, s);
  std::printf("wrote %s: %lld images of %s\n", out.c_str(), static_cast<long long>(s.count), what.c_str());
  return 0;
}

}  // namespace dd::ddpm

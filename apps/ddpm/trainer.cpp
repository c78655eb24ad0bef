#include "apps/ddpm/trainer.h"

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/data/loader.h"
#include "apps/data/open_dataset.h"
#include "apps/ddpm/checkpoint.h"
#include "apps/ddpm/checkpoint_files.h"
#include "apps/ddpm/train_fid.h"
#include "apps/ddpm/interrupt.h"
#include "apps/ddpm/loss_ring.h"
#include "apps/ddpm/lr_schedule.h"
#include "apps/ddpm/sampler.h"
#include "apps/ddpm/grad_sync.h"
#include "apps/ddpm/train_step.h"
#include "apps/dist/comm.h"
#include "apps/dist/nccl_comm.h"
#include "apps/dist/shard.h"
#include "apps/report/atomic_file.h"
#include "apps/report/image_grid.h"
#include "apps/report/loss_curve.h"
#include "apps/report/metrics_log.h"
#include "apps/report/progress.h"
#include "autograd/adam.h"
#include "engine/context.h"
#include "engine/device.h"
#include "engine/durable_file.h"
#include "engine/error.h"
#include "kernels/conv_autotune.h"
#include "models/diffusion.h"
#include "models/ema.h"
#include "models/weights.h"

namespace dd::ddpm {

namespace fs = std::filesystem;

namespace {

std::string flag_name(const std::string& key) {
  std::string f = "--" + key;
  for (char& c : f)
    if (c == '_') c = '-';
  return f;
}

void validate(const TrainOptions& o) {
  DD_CHECK(o.steps > 0, "--steps must be positive, got ", o.steps);
  DD_CHECK(o.batch_size > 0, "--batch-size must be positive, got ", o.batch_size);
  DD_CHECK(o.keep_checkpoints >= 1, "--keep-checkpoints must be >= 1, got ", o.keep_checkpoints);
  DD_CHECK(o.grad_accum >= 1, "--grad-accum must be >= 1 (micro-batches per step), got ", o.grad_accum);
  parse_precision(o.precision);  // throws naming --precision
  DD_CHECK(!o.rescale_zero_terminal_snr || o.objective != "pred_noise",
           "--rescale-zero-terminal-snr needs --objective pred_v or pred_x0: at zero SNR the noise prediction "
           "gives no x0 (x0 = (x - eps) / 0), as Lin et al. note");
  DD_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be a positive number, got ", o.lr);
  DD_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0 (0 turns clipping off), got ", o.grad_clip);
  DD_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "--weight-decay must be >= 0, got ", o.weight_decay);
  DD_CHECK(o.lr_warmup_steps >= 0, "--lr-warmup-steps must be >= 0, got ", o.lr_warmup_steps);
  parse_lr_schedule(o.lr_schedule);
  DD_CHECK(o.objective == "pred_noise" || o.objective == "pred_x0" || o.objective == "pred_v",
           "--objective must be pred_noise, pred_x0 or pred_v, got '", o.objective, "'");
  DD_CHECK(o.min_snr_gamma >= 0, "--min-snr-gamma must be >= 0 (0 = off), got ", o.min_snr_gamma);
  DD_CHECK(o.offset_noise >= 0, "--offset-noise must be >= 0, got ", o.offset_noise);
  DD_CHECK(o.ema_decay >= 0 && o.ema_decay < 1, "--ema-decay must be in [0, 1) (0 turns EMA off), got ", o.ema_decay);
  DD_CHECK(o.ema_every > 0, "--ema-every must be positive, got ", o.ema_every);
  DD_CHECK(o.ema_start >= 0, "--ema-start must be >= 0, got ", o.ema_start);
  DD_CHECK(o.sample_every >= 0 && o.save_every >= 0 && o.log_every > 0,
           "--sample-every and --save-every must be >= 0 and --log-every positive");
  DD_CHECK(o.n_samples > 0, "--n-samples must be positive, got ", o.n_samples);
  DD_CHECK(o.sample_sampler == "ddim" || o.sample_sampler == "ddpm" || o.sample_sampler == "dpmpp",
           "--sample-sampler must be ddim, dpmpp or ddpm, got '", o.sample_sampler, "'");
  DD_CHECK(o.sample_steps >= 1, "--sample-steps must be positive, got ", o.sample_steps);
  DD_CHECK(o.sample_eta >= 0.0, "--sample-eta must be >= 0, got ", o.sample_eta);
  DD_CHECK(o.fid_every >= 0, "--fid-every must be >= 0 (0 = never), got ", o.fid_every);
  DD_CHECK(o.fid_every == 0 || !o.fid_inception.empty(),
           "--fid-every needs --fid-inception (pytorch-fid's weights converted by scripts/convert_inception.py)");
  DD_CHECK(o.timesteps > 0, "--timesteps must be positive, got ", o.timesteps);
  DD_CHECK(o.image_size >= 0 && o.channels >= 0, "--image-size and --channels must be >= 0 (0 = the dataset's)");
  DD_CHECK(o.channels == 0 || o.channels == 1 || o.channels == 3, "--channels must be 1 or 3, got ", o.channels);
  DD_CHECK(!o.out.empty(), "--out must name a folder");
  DD_CHECK(o.model == "unet" || o.model == "ddpm-cifar10" || o.model == "unet2d",
           "--model must be unet, ddpm-cifar10 or unet2d (--model-config), got '", o.model, "'");
  DD_CHECK(o.model != "unet2d" || !o.unet2d_config.is_null(), "--model unet2d needs --model-config config.json");
  DD_CHECK(o.model == "unet" || !o.self_condition, "--self-condition is for the seed U-Net (--model unet) only");
  DD_CHECK(o.dropout < 1.0, "--dropout must be < 1, got ", o.dropout);
  DD_CHECK(o.threads >= 0, "--threads must be >= 0 (0 = all cores), got ", o.threads);
}

// Options for this invocation: a resumed run takes the saved ones, with the few flags that may
// change applied on top; any other flag given explicitly must agree with the run.
TrainOptions resolve_options(const TrainOptions& given, const std::vector<std::string>& explicit_keys,
                             const SafeTensorsFile* ckpt, const std::string& ckpt_path) {
  if (!ckpt) return given;
  const TrainOptions saved = TrainOptions::from_json(checkpoint_options(*ckpt, ckpt_path));
  nlohmann::json merged = saved.to_json();
  const nlohmann::json now = given.to_json();
  for (const auto& key : explicit_keys) {
    if (!now.contains(key)) continue;
    if (resumable_override(key)) {
      merged[key] = now[key];
    } else {
      DD_CHECK(now[key] == merged[key], flag_name(key), " is ", now[key].dump(), " but the run in ", given.out,
               " was started with ", merged[key].dump(), "; a resumed run keeps its settings (it may change only ",
               "--steps, --sample-every, --save-every, --n-samples, --sample-sampler, --sample-steps, --sample-eta, --log-every, "
               "--device, --threads, --cuda-graphs, --precision, --conv-autotune)");
    }
  }
  TrainOptions o = TrainOptions::from_json(merged);
  o.out = given.out;
  o.resume = true;
  return o;
}

// Turns conv autotuning on or off for the run and back as it was after (train() may run in-process
// beside other work, as in the tests).
class ConvAutotuneScope {
 public:
  explicit ConvAutotuneScope(bool on) : prev_(kernels::conv_autotune()) { kernels::set_conv_autotune(on); }
  ~ConvAutotuneScope() { kernels::set_conv_autotune(prev_); }
  ConvAutotuneScope(const ConvAutotuneScope&) = delete;
  ConvAutotuneScope& operator=(const ConvAutotuneScope&) = delete;

 private:
  bool prev_;
};

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DD_CHECK(in.good(), path, ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  DD_CHECK(!in.bad(), path, ": read failed");
  return s.str();
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%07lld", static_cast<long long>(step));
  return buf;
}

}  // namespace

TrainSummary train(const TrainOptions& given, const std::vector<std::string>& explicit_keys, std::FILE* log,
                   const dist::Comm* comm) {
  const dist::Comm single;
  if (!comm) comm = &single;
  const bool root = comm->is_root();
  // Only rank 0 logs and writes (files, progress); the others train silently beside it.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> devnull(root ? nullptr : std::fopen("/dev/null", "w"), &std::fclose);
  if (!root) {
    DD_CHECK(devnull, "rank ", comm->rank(), ": cannot open /dev/null");
    log = devnull.get();
  }
  const RunFiles files{given.out};
  std::unique_ptr<SafeTensorsFile> ckpt;
  std::string ckpt_path = files.checkpoint();  // the state resumed from: the newest that verifies
  if (given.resume) {
    ckpt = std::make_unique<SafeTensorsFile>(load_newest_checkpoint(files.checkpoint(), log, &ckpt_path));
  } else {
    const std::vector<std::string> existing = checkpoint_candidates(files.checkpoint());
    DD_CHECK(existing.empty(), existing.empty() ? "" : existing.front(),
             " exists: pass --resume to continue that run, or choose another --out (nothing was overwritten)");
  }
  const TrainOptions opts = resolve_options(given, explicit_keys, ckpt.get(), ckpt_path);
  validate(opts);
  // Data parallel on GPUs needs NCCL: said before anything else, even on a machine without a GPU.
  if (comm->distributed() && opts.device == "cuda") dist::require_nccl(comm->world_size());
  const Device dev = resolve_device(opts.device);
  // The GPU communicator (apps/dist/nccl_comm.h): it picks this rank's GPU, so it comes before
  // anything touches the GPU.
  std::unique_ptr<dist::NcclComm> nccl;
  if (comm->distributed()) {
    dist::local_batch(opts.batch_size, comm->world_size());  // throws naming --batch-size and the world size
    if (dev == Device::CUDA) nccl = std::make_unique<dist::NcclComm>(*comm, dist::TcpGroup::timeout_from_env());
  }
  // The graph covers the single-batch step; accumulation runs eagerly (apps/ddpm/train_step.h).
  DD_CHECK(opts.grad_accum == 1 || opts.cuda_graphs != "on",
           "--cuda-graphs on does not cover --grad-accum > 1 (the accumulated step runs eagerly); use --cuda-graphs "
           "auto or off");
  // A data-parallel step runs eagerly (TrainStep::set_data_parallel): its random offsets differ per
  // rank and the gradient sync runs between the backward's closures, which a replayed graph would fix.
  DD_CHECK(!nccl || opts.cuda_graphs != "on", "--cuda-graphs on: a data-parallel GPU step (", comm->world_size(),
           " ranks) runs eagerly; use --cuda-graphs auto or off");
  const bool cuda_graphs = opts.grad_accum == 1 && resolve_cuda_graphs(opts.cuda_graphs, dev);
  const bool step_graphs = cuda_graphs && !nccl;  // the sample grids keep their graphs
  // Checkpoints hold fp32 weights and Adam moments whatever the precision, so a run may resume in another.
  const PrecisionScope precision(parse_precision(opts.precision));
  // --conv-autotune: a resumed run takes its table back, so it runs the kernels the run ran.
  const ConvAutotuneScope autotune(opts.conv_autotune);
  if (opts.conv_autotune && ckpt && fs::exists(files.conv_autotune()))
    kernels::load_conv_autotune_table(read_text_file(files.conv_autotune()), files.conv_autotune());
  if (opts.threads > 0) omp_set_num_threads(opts.threads);
  const auto beta_schedule = models::parse_beta_schedule(opts.beta_schedule);
  const auto loss_type = kernels::parse_loss_type(opts.loss);

  // Data.
  auto dataset = std::make_shared<data::Dataset>(data::open_dataset(opts.data, opts.image_size, opts.channels));
  DD_CHECK(dataset->height == dataset->width, "training needs square images; ", dataset->description, " is ",
           dataset->height, "x", dataset->width, " (pass --image-size to crop and resize)");
  DD_CHECK(dataset->count >= opts.batch_size, "--batch-size ", opts.batch_size, " is larger than the dataset (",
           dataset->count, " images in ", dataset->description, ")");
  data::Loader loader(dataset, {opts.batch_size, opts.seed, opts.random_flip});
  loader.set_shard(comm->rank(), comm->world_size());

  // Model and diffusion.
  models::ModelConfig cfg;
  cfg.unet.dim = opts.dim;
  cfg.unet.dim_mults = opts.dim_mults;
  cfg.unet.channels = static_cast<int>(dataset->channels);
  cfg.unet.self_condition = opts.self_condition;
  cfg.unet.resnet_block_groups = opts.resnet_block_groups;
  if (opts.model != "unet") {
    // diffusers' UNet2DModel: the preset's or --model-config's architecture, at the dataset's size
    // and channel count.
    models::Unet2DConfig u = opts.unet2d_config.is_null()
                                 ? models::Unet2DConfig::ddpm_cifar10()
                                 : models::Unet2DConfig::from_json(opts.unet2d_config, "--model-config");
    u.in_channels = u.out_channels = static_cast<int>(dataset->channels);
    u.sample_size = static_cast<int>(dataset->height);
    if (opts.dropout >= 0) u.dropout = opts.dropout;
    u.validate();
    cfg.unet2d = u;
  }
  cfg.diffusion.image_size = static_cast<int>(dataset->height);
  cfg.diffusion.timesteps = opts.timesteps;
  cfg.diffusion.beta_schedule = models::beta_schedule_name(beta_schedule);
  cfg.diffusion.rescale_zero_terminal_snr = opts.rescale_zero_terminal_snr;
  cfg.diffusion.loss_type = opts.loss;
  cfg.diffusion.objective = opts.objective;  // the weights file records it; sampling converts by it
  cfg = models::ModelConfig::from_json(cfg.to_json(), "the flags --model/--model-config/--dim/--dim-mults/--image-size");

  Generator gen(opts.seed);
  models::AnyModel model = models::make_model(cfg, gen);
  model.params->to(dev);  // before the optimizer and the EMA, whose state lives beside the weights
  // Every rank starts from rank 0's weights (before the EMA copies them).
  Tensor param_view = model.params->param_arena();
  // On GPUs the arena goes by NCCL, device to device; on the CPU by the host communicator.
  const auto broadcast_params = [&] {
    if (nccl) nccl->broadcast_from_root(param_view);
    else comm->broadcast_from_root(param_view);
  };
  broadcast_params();
  // Training mode: the UNet2DModel's dropout draws its masks from the run's generator (saved in
  // the checkpoint, so a resumed run draws the same masks).
  if (model.unet2d) model.unet2d->set_dropout_generator(&gen);
  models::LossOptions loss_options;
  loss_options.min_snr_gamma = opts.min_snr_gamma;
  loss_options.offset_noise = opts.offset_noise;
  const models::GaussianDiffusion diffusion(
      models::Schedule::make(beta_schedule, opts.timesteps, opts.rescale_zero_terminal_snr), loss_type,
                                            models::parse_objective(opts.objective), loss_options);
  const std::vector<ag::Var> params = model.params->vars();
  // The gradient arena exists (zero) before the first backward, so every gradient lands in it and
  // Adam, the clip and the EMA run over the flat buffers.
  model.params->zero_grad();
  const Tensor param_arena = model.params->param_arena(), grad_arena = model.params->grad_arena();
  kernels::AdamHyper hyper;
  hyper.lr = static_cast<float>(opts.lr);
  hyper.weight_decay = static_cast<float>(opts.weight_decay);
  hyper.decoupled = opts.weight_decay > 0;
  const LrSchedule lr_schedule = parse_lr_schedule(opts.lr_schedule);
  // The rate of the step after `done` steps (LambdaLR's, as diffusers' training scripts step it).
  const auto lr_at = [&](int64_t done) {
    return opts.lr * lr_multiplier(lr_schedule, done, opts.lr_warmup_steps, opts.steps);
  };
  ag::Adam adam(params, hyper, param_arena, grad_arena);
  const bool use_ema = opts.ema_decay > 0;
  std::unique_ptr<models::Ema> ema;
  models::AnyModel ema_model;
  if (use_ema) {
    models::EmaConfig ec;
    ec.decay = opts.ema_decay;
    ec.update_every = opts.ema_every;
    ec.update_after_step = opts.ema_start;
    ema = std::make_unique<models::Ema>(params, ec, param_arena);
    Generator unused(0);
    ema_model = models::make_model(cfg, unused);
    ema_model.params->to(dev);
  }

  TrainState state;
  state.step = 0;
  if (ckpt) {
    restore_checkpoint(*ckpt, ckpt_path, *model.params, adam, ema.get(), loader, gen, state);
    DD_CHECK(state.step <= opts.steps, "--steps ", opts.steps, " is behind the run in ", opts.out, ", which is at step ",
             state.step);
    broadcast_params();  // whatever each rank read, rank 0's weights win
  }
  if (root) fs::create_directories(files.samples_dir());
  // A run killed mid-save (SIGKILL, preemption) leaves its temporary files: the saved files are
  // intact (each write is temp + rename), the temporaries are clutter.
  for (const std::string& dir : {opts.out, files.samples_dir()})
    for (const std::string& stale : root ? remove_stale_temporaries(dir) : std::vector<std::string>{})
      std::fprintf(log, "removed %s, left by an interrupted save\n", stale.c_str());
  if (root) {
    nlohmann::json c{{"train", opts.to_json()}, {"model", cfg.to_json()}, {"dataset", dataset->description}};
    const std::string text = c.dump(2) + "\n";
    report::write_file_atomically(files.config(), text.data(), text.size(), "train_ddpm config");
  }

  std::unique_ptr<report::MetricsLog> metrics;
  if (root)
    metrics = std::make_unique<report::MetricsLog>(ckpt ? report::MetricsLog::open_for_resume(files.metrics(), state.step)
                                                        : report::MetricsLog(files.metrics()));

  auto sampling_model = [&]() -> models::AnyModel& {
    if (!use_ema) return model;
    ema->copy_to(ema_model.params->vars());
    return ema_model;
  };
  auto write_weights = [&]() {
    models::AnyModel& m = sampling_model();
    models::save_weights(files.weights(), *m.params, cfg,
                         {{"step", std::to_string(state.step)}, {"ema", use_ema ? "true" : "false"}});
  };
  // The step of the state at checkpoint.safetensors, kept as an older copy at the next save; -1 when
  // there is none, or when the run resumed from an older copy (the newest did not verify).
  int64_t newest_saved_step = ckpt && ckpt_path == files.checkpoint() ? state.step : -1;
  auto write_checkpoint = [&]() {
    if (!root) return;
    // The state now at checkpoint.safetensors stays as an older copy (--keep-checkpoints).
    rotate_checkpoints(files.checkpoint(), newest_saved_step, opts.keep_checkpoints);
    save_checkpoint(files.checkpoint(), opts.to_json(), cfg, *model.params, adam, ema.get(), loader, gen, state);
    newest_saved_step = state.step;
    write_weights();
    if (const std::string table = kernels::conv_autotune_table(); opts.conv_autotune && !table.empty())
      report::write_file_atomically(files.conv_autotune(), table.data(), table.size(), "train_ddpm --conv-autotune");
  };
  // The sampler settings of the grids, shared by the FID samples.
  auto grid_request = [&]() {
    SampleRequest req;
    req.image_size = cfg.diffusion.image_size;
    req.progress_out = log;
    req.device = dev;
    req.cuda_graphs = cuda_graphs;
    req.sampler = opts.sample_sampler;
    req.ddim.steps = std::min(opts.sample_steps, opts.timesteps);
    req.ddim.eta = opts.sample_eta;
    req.dpm.steps = std::min(opts.sample_steps, std::max(1, opts.timesteps / 2));
    return req;
  };
  std::unique_ptr<TrainFid> train_fid;
  if (opts.fid_every > 0 && root) train_fid = std::make_unique<TrainFid>(opts, opts.out, *dataset, dev, state.step, log);
  auto score_fid = [&]() {
    models::AnyModel& m = sampling_model();
    if (m.unet2d) m.unet2d->set_dropout_generator(nullptr);  // eval mode while sampling
    train_fid->evaluate(*m.net, diffusion, grid_request(), state.step);
    if (model.unet2d) model.unet2d->set_dropout_generator(&gen);
  };
  auto write_samples = [&]() {
    if (!root) return;  // sampling is rank 0's work; the others wait for it in the next all-reduce
    SampleRequest req = grid_request();
    req.n = opts.n_samples;
    req.batch_size = std::min(opts.n_samples, 64);
    req.seed = opts.seed;  // the same noise every time, so successive grids show the model improving
    std::fprintf(log, "sampling %d images at step %lld (%s, %d denoising steps)\n", req.n,
                 static_cast<long long>(state.step), req.sampler.c_str(),
                 req.sampler == "ddpm" ? opts.timesteps : req.ddim.steps);
    models::AnyModel& m = sampling_model();
    if (m.unet2d) m.unet2d->set_dropout_generator(nullptr);  // eval mode while sampling
    SampleResult r = sample_images(*m.net, diffusion, req);
    if (model.unet2d) model.unet2d->set_dropout_generator(&gen);
    const int nrow = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(req.n))));
    const std::string path = files.samples_dir() + "/" + step_name(state.step) + ".png";
    report::write_image_grid(path, r.images, nrow);
    std::fprintf(log, "wrote %s\n", path.c_str());
  };
  auto write_curve = [&]() {
    if (!root) return;
    auto rows = report::read_metrics(files.metrics());
    std::vector<std::pair<int64_t, double>> pts;
    for (const auto& r : rows) pts.emplace_back(r.step, r.loss);
    if (pts.size() >= 2) report::write_loss_curve(files.loss_curve(), pts);
  };

  const std::string arch =
      cfg.unet2d ? "UNet2DModel block_out_channels " + nlohmann::json(cfg.unet2d->block_out_channels).dump() +
                       ", dropout " + std::to_string(cfg.unet2d->dropout)
                 : "U-Net dim " + std::to_string(cfg.unet.dim) + ", dim_mults " + nlohmann::json(cfg.unet.dim_mults).dump();
  std::fprintf(log, "data: %s\nmodel: %s, %lld parameters; %d timesteps, %s schedule, %s loss, %s%s\n",
               dataset->description.c_str(), arch.c_str(),
               static_cast<long long>(model.params->numel()), opts.timesteps, opts.beta_schedule.c_str(),
               opts.loss.c_str(), opts.objective.c_str(),
               opts.min_snr_gamma > 0 ? (", min-SNR gamma " + std::to_string(opts.min_snr_gamma)).c_str() : "");
  const std::string batch_text = opts.grad_accum > 1 ? std::to_string(opts.grad_accum) + " x " +
                                                         std::to_string(opts.batch_size) + " (accumulated)"
                                                   : std::to_string(opts.batch_size);
  const std::string ranks_text = comm->distributed() ? " (global; " + std::to_string(comm->world_size()) + " ranks of " +
                                                           std::to_string(loader.local_batch_size()) + ")"
                                                     : "";
  std::fprintf(log, "%s %s at step %lld of %lld; batch %s%s, lr %g, %d threads, device %s%s, precision %s%s\n",
               ckpt ? "resuming" : "training", opts.out.c_str(), static_cast<long long>(state.step),
               static_cast<long long>(opts.steps), batch_text.c_str(), ranks_text.c_str(), opts.lr, omp_get_max_threads(),
               device_name(dev), step_graphs ? " (CUDA graphs)" : "", opts.precision.c_str(),
               opts.conv_autotune ? " (conv autotune)" : "");
  if (nccl && cuda_graphs)
    std::fprintf(log, "CUDA graphs: off for the training step (data parallel on %d GPUs runs it eagerly, NCCL between "
                      "the backward's closures); the sample grids keep them\n", comm->world_size());

  TrainSummary summary;
  summary.start_step = state.step;
  const int64_t images_per_step = static_cast<int64_t>(opts.batch_size) * opts.grad_accum;
  InterruptGuard interrupt_guard;  // apps/ddpm/interrupt.h: SIGINT, SIGTERM, SIGUSR1
  report::Progress progress(opts.steps, "train", log, state.step);
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto t_interval = t_start;
  double interval_loss = 0.0, smooth_loss = NAN;
  int64_t interval_steps = 0;
  const double elapsed_before = state.elapsed_s;
  // On the GPU the losses are read back only when needed (see loss_ring.h); the CPU reads each step,
  // which costs nothing there and keeps the progress line current.
  LossRing losses(dev, 1024);
  // Reads the pending losses: each must be finite (a diverged step has touched only the in-memory
  // weights: nothing is saved after the throw, so the last checkpoint stays intact).
  auto drain_losses = [&] {
    const std::vector<float> lvs = losses.drain();
    const int64_t first = state.step - static_cast<int64_t>(lvs.size()) + 1;
    for (std::size_t i = 0; i < lvs.size(); ++i) {
      const double lv = lvs[i];
      DD_CHECK(std::isfinite(lv), "training diverged at step ", first + static_cast<int64_t>(i), ": the loss is ",
               lv, ". Lower --lr or keep --grad-clip on; the last checkpoint in ", opts.out, " is intact");
      interval_loss += lv;
      ++interval_steps;
      smooth_loss = std::isnan(smooth_loss) ? lv : 0.98 * smooth_loss + 0.02 * lv;
    }
  };

  TrainStepParts parts;
  parts.model = model.net.get();
  parts.params = model.params;
  parts.diffusion = &diffusion;
  parts.gen = &gen;
  parts.adam = &adam;
  parts.grad_clip = opts.grad_clip;
  TrainStep train_step(parts, dev, step_graphs);
  Tensor grad_view = grad_arena;
  // Each rank draws its own block range of the step's random numbers (apps/dist/shard.h) and the
  // gradients are averaged before the clip and Adam.
  // On GPUs the buckets' all-reduces overlap the backward (apps/ddpm/grad_sync.h) unless
  // DD_DIST_OVERLAP=0, which averages the whole arena in one all-reduce after the backward.
  std::unique_ptr<OverlappedGradSync> grad_sync;
  // Host seconds inside the CPU ranks' gradient all-reduce, the wait for the slowest rank included
  // (bench/run_dist.sh reads it). NCCL's all-reduces are asynchronous on a second stream: not timed here.
  double allreduce_s = 0.0;
  const char* overlap_env = std::getenv("DD_DIST_OVERLAP");
  const bool overlap = !overlap_env || std::string(overlap_env) != "0";
  if (nccl && overlap) {
    grad_sync = std::make_unique<OverlappedGradSync>(*nccl, *model.params, dist::bucket_elems_from_env());
    std::fprintf(log, "gradients: %zu bucket(s) of at most %lld floats, all-reduced by NCCL during the backward\n",
                 grad_sync->buckets().size(), static_cast<long long>(dist::bucket_elems_from_env()));
    train_step.set_data_parallel(comm->rank(), comm->world_size(), [&] { grad_sync->finish(); },
                                 [&] { grad_sync->arm(); });
  } else if (nccl)
    train_step.set_data_parallel(comm->rank(), comm->world_size(), [&] { nccl->allreduce_mean(grad_view); });
  else if (comm->distributed())
    train_step.set_data_parallel(comm->rank(), comm->world_size(), [&] {
      const auto t0 = clock::now();
      comm->allreduce_mean(grad_view);
      allreduce_s += std::chrono::duration<double>(clock::now() - t0).count();
    });
  double step_lr = lr_at(state.step);
  bool grid_interrupted = false;
  // Whether to run another step. Data parallel, the ranks decide together (a stop on any rank stops
  // all, after the same step): a rank leaving the loop alone would leave the others in the next
  // all-reduce. One float per step, nothing next to the gradients.
  auto keep_going = [&] {
    if (state.step >= opts.steps) return false;
    if (!comm->distributed()) return !stop_requested();
    Tensor any_stop = Tensor::full({1}, stop_requested() ? 1.0f : 0.0f);
    comm->allreduce_mean(any_stop);
    return any_stop.data()[0] == 0.0f;
  };
  while (keep_going()) {
    step_lr = lr_at(state.step);
    adam.set_lr(static_cast<float>(step_lr));
    std::vector<Tensor> micro_batches;
    for (int k = 0; k < opts.grad_accum; ++k) micro_batches.push_back(loader.next_batch());
    Tensor loss = train_step.run(micro_batches);
    // The logged loss is the global batch's: the mean of the ranks' means (equal local batches). On
    // GPUs it stays on the device (NCCL, one float): the host reads losses only when it drains them.
    if (nccl) nccl->allreduce_mean(loss);
    else if (comm->distributed()) comm->allreduce_mean(loss);
    if (ema) ema->update(state.step + 1);
    losses.push(loss);
    ++state.step;
    const bool log_step = state.step % opts.log_every == 0 || state.step == opts.steps;
    const bool save_step = opts.save_every > 0 && state.step % opts.save_every == 0;
    const bool sample_step = opts.sample_every > 0 && state.step % opts.sample_every == 0;
    const bool usr1 = take_checkpoint_request();
    if (dev == Device::CPU || log_step || save_step || sample_step || losses.full() || usr1 || stop_requested())
      drain_losses();

    const double run_s = std::chrono::duration<double>(clock::now() - t_start).count();
    const double ips = static_cast<double>((state.step - summary.start_step) * images_per_step) / std::max(run_s, 1e-9);
    char extra[128];
    std::snprintf(extra, sizeof extra, "step %lld  loss %.4f  %.1f img/s", static_cast<long long>(state.step),
                  smooth_loss, ips);
    progress.update(state.step, extra);

    if (log_step) {
      const auto now = clock::now();
      const double dt = std::chrono::duration<double>(now - t_interval).count();
      summary.last_loss = interval_loss / static_cast<double>(interval_steps);
      if (metrics) metrics->append(state.step, summary.last_loss, step_lr,
                     static_cast<double>(interval_steps * images_per_step) / std::max(dt, 1e-9),
                     elapsed_before + run_s);
      interval_loss = 0.0;
      interval_steps = 0;
      t_interval = now;
    }
    state.elapsed_s = elapsed_before + run_s;
    const bool last = state.step == opts.steps;
    if (opts.save_every > 0 && state.step % opts.save_every == 0 && !last) {
      write_checkpoint();
    } else if (usr1 && !last) {  // SIGUSR1: a checkpoint now, then on (the last step saves anyway)
      write_checkpoint();
      std::fprintf(log, "\ncheckpoint written at step %lld (SIGUSR1)\n", static_cast<long long>(state.step));
    }
    if (opts.sample_every > 0 && state.step % opts.sample_every == 0 && !last && !stop_requested()) {
      write_curve();
      try {
        write_samples();
      } catch (const Interrupted&) {  // no partial grid; the loop ends and the checkpoint is written below
        grid_interrupted = true;
      }
    }
    if (train_fid && train_fid->due(state.step) && !last && !stop_requested()) {
      try {
        score_fid();
      } catch (const Interrupted&) {  // no score logged; the loop ends and the checkpoint is written below
        grid_interrupted = true;
      }
    }
  }
  drain_losses();  // none pending (the last step drains), but a ring is never left unchecked
  progress.finish();
  summary.end_step = state.step;
  summary.interrupted = state.step < opts.steps || grid_interrupted;
  const double run_s = std::chrono::duration<double>(clock::now() - t_start).count();
  summary.images_per_s = static_cast<double>((state.step - summary.start_step) * images_per_step) / std::max(run_s, 1e-9);
  write_checkpoint();
  write_curve();
  if (summary.interrupted) {
    std::fprintf(log, "\nstopped by %s at step %lld; checkpoint saved. Continue with: train_ddpm --out %s --resume\n",
                 stop_signal_name(), static_cast<long long>(state.step), opts.out.c_str());
  } else if (summary.end_step > summary.start_step || opts.sample_every == 0) {
    try {
      write_samples();
      if (train_fid) score_fid();
    } catch (const Interrupted&) {
      summary.interrupted = true;
      std::fprintf(log,
                   "\nstopped by %s during the final sample grid (no grid written); training is complete and saved: "
                   "sample_ddpm --weights %s\n",
                   stop_signal_name(), files.weights().c_str());
      return summary;
    }
  }
  const int64_t steps_run = state.step - summary.start_step;
  if (comm->distributed() && !nccl && steps_run > 0) {
    const double per_step_ms = 1e3 / static_cast<double>(steps_run);
    std::fprintf(log, "data parallel: %d ranks; gradient all-reduce of %lld floats %.2f ms a step (rank 0, the wait for "
                 "the slowest rank included) of %.1f ms a step\n", comm->world_size(),
                 static_cast<long long>(grad_view.numel()), allreduce_s * per_step_ms, run_s * per_step_ms);
  }
  if (opts.conv_autotune) {
    const kernels::ConvAutotuneStats t = kernels::conv_autotune_stats();
    std::fprintf(log, "conv autotune: %lld shapes and directions timed in %.1f s (%lld runs), %lld calls answered from "
                 "the table%s\n", static_cast<long long>(t.tuned), t.seconds, static_cast<long long>(t.timed_runs),
                 static_cast<long long>(t.hits),
                 dev == Device::CUDA && opts.precision != "fp32" ? "" : " (nothing to tune: tensor-core convolutions "
                                                                          "run on CUDA under tf32 or bf16 only)");
  }
  std::fprintf(log, "done: step %lld, %.1f img/s; weights in %s\n", static_cast<long long>(state.step),
               summary.images_per_s, files.weights().c_str());
  return summary;
}

}  // namespace dd::ddpm

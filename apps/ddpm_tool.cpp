// ddpm_tool: the PyTorch boundary. `forward` runs the U-Net on tensors from a safetensors file
// (NCHW, as PyTorch holds them); `info` prints a weights file's config and parameter count.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "autograd/var.h"
#include "engine/error.h"
#include "engine/safetensors.h"
#include "models/torch_layout.h"
#include "models/weights.h"

namespace {

using namespace dd;

int run_forward(const std::string& weights, const std::string& input, const std::string& output,
                const std::string& device) {
  const Device dev = resolve_device(device);
  auto model = models::load_unet(weights, nullptr, dev);
  SafeTensorsFile in = load_safetensors(input);
  const Tensor x = in.at("x").to_f32();
  DD_CHECK(x.ndim() == 4, input, ": 'x' must be [B, C, H, W], got ", shape_str(x.shape()));
  const std::vector<int64_t> t = in.at("t").to_i64();
  DD_CHECK(static_cast<int64_t>(t.size()) == x.dim(0) && in.at("t").shape.size() == 1, input,
           ": 't' must be [B] = [", x.dim(0), "], got ", shape_str(in.at("t").shape));
  std::vector<float> tf(t.begin(), t.end());
  ag::Var sc;
  if (in.contains("x_self_cond")) {
    const Tensor s = in.at("x_self_cond").to_f32();
    DD_CHECK(s.shape() == x.shape(), input, ": 'x_self_cond' must have x's shape ", shape_str(x.shape()), ", got ",
             shape_str(s.shape()));
    sc = ag::Var(models::nchw_to_nhwc(s).to(dev));
  }
  ag::NoGrad no_grad;
  ag::Var y = model->forward(ag::Var(models::nchw_to_nhwc(x).to(dev)), Tensor::from_vector({x.dim(0)}, tf, dev), sc);
  SafeTensorsFile out;
  out.put_f32("model_output", models::nhwc_to_nchw(y.value()));
  save_safetensors(output, out);
  std::printf("wrote %s: model_output %s (device %s)\n", output.c_str(), shape_str(out.at("model_output").shape).c_str(),
              device_name(dev));
  return 0;
}

int run_info(const std::string& weights) {
  models::ModelConfig cfg;
  auto model = models::load_unet(weights, &cfg);
  std::printf("%s\nconfig: %s\nparameters: %lld in %zu tensors\n", weights.c_str(), cfg.to_json().dump(2).c_str(),
              static_cast<long long>(model->params().numel()), model->params().all().size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tools for DDPM weights files (safetensors, PyTorch state_dict names and layouts)."};
  app.require_subcommand(1);
  std::string weights, input, output, info_weights, device = "auto";
  auto* fwd = app.add_subcommand("forward", "run the U-Net: IN holds x [B,C,H,W] F32, t [B] I64 (and optionally "
                                            "x_self_cond); OUT gets model_output [B,C,H,W] F32");
  fwd->add_option("--weights", weights, "model.safetensors")->required();
  fwd->add_option("--input", input, "IN.safetensors")->required();
  fwd->add_option("--output", output, "OUT.safetensors")->required();
  fwd->add_option("--device", device, "cpu, cuda or auto (cuda when a device is present)")->capture_default_str();
  auto* info = app.add_subcommand("info", "print the config and the parameter count");
  info->add_option("weights", info_weights, "model.safetensors")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    if (*fwd) return run_forward(weights, input, output, device);
    return run_info(info_weights);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ddpm_tool: error: %s\n", e.what());
    return 1;
  }
}

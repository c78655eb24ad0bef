#include "apps/ddpm/checkpoint.h"

#include "engine/error.h"
#include "models/torch_layout.h"

namespace dd::ddpm {

namespace {

constexpr const char* kFormat = "ddpm-engine-checkpoint-1";

Tensor to_torch(const models::Parameter& p, const Tensor& t) {
  return p.kind == models::ParamKind::ConvWeight ? models::ohwi_to_oihw(t) : t.to(Device::CPU);
}

Tensor from_torch(const models::Parameter& p, const Tensor& t) {
  return p.kind == models::ParamKind::ConvWeight ? models::oihw_to_ohwi(t) : t;
}

// Copies the file's tensor `key` (PyTorch layout) into dst (our layout), checking the shape.
void load_into(const SafeTensorsFile& f, const std::string& path, const std::string& key, const models::Parameter& p,
               Tensor& dst) {
  DD_CHECK(f.contains(key), path, ": the checkpoint has no tensor '", key,
           "': it was written for a different model (or is not a train_ddpm checkpoint)");
  Tensor t = f.at(key).to_f32();
  Tensor ours = from_torch(p, t);
  DD_CHECK(ours.shape() == dst.shape(), path, ": '", key, "' has shape ", shape_str(t.shape()),
           " which does not fit the model's ", p.name);
  dst.copy_from(ours.to(dst.device()));
}

nlohmann::json parse_meta(const SafeTensorsFile& f, const std::string& path, const std::string& key) {
  auto it = f.metadata.find(key);
  DD_CHECK(it != f.metadata.end(), path, ": checkpoint metadata has no '", key, "' (not a train_ddpm checkpoint?)");
  try {
    return nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    DD_FAIL(path, ": checkpoint metadata '", key, "' is not valid JSON: ", e.what());
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const nlohmann::json& options, const models::ModelConfig& cfg,
                     const models::ParamSet& params, ag::Adam& adam, const models::Ema* ema, const data::Loader& loader,
                     const Generator& gen, const TrainState& state) {
  SafeTensorsFile f;
  const auto& ps = params.all();
  for (size_t i = 0; i < ps.size(); ++i) {
    const auto& p = ps[i];
    f.put_f32("model/" + p.name, to_torch(p, p.var.value()));
    if (adam.exp_avg()[i].defined()) {
      f.put_f32("adam.exp_avg/" + p.name, to_torch(p, adam.exp_avg()[i]));
      f.put_f32("adam.exp_avg_sq/" + p.name, to_torch(p, adam.exp_avg_sq()[i]));
    }
    if (ema) f.put_f32("ema/" + p.name, to_torch(p, ema->shadow()[i]));
  }
  nlohmann::json st;
  st["step"] = state.step;
  st["elapsed_s"] = state.elapsed_s;
  st["rng"] = {{"seed", gen.seed()}, {"offset", gen.offset()}};
  const data::LoaderState ls = loader.state();
  st["loader"] = {{"epoch", ls.epoch}, {"position", ls.position}};
  st["adam_steps"] = adam.param_steps();
  if (ema) {
    const models::EmaState es = ema->state();
    st["ema"] = {{"last_step", es.last_step}, {"averaged", es.averaged}, {"initted", es.initted}};
  }
  f.metadata["format"] = kFormat;
  f.metadata["state"] = st.dump();
  f.metadata["train"] = options.dump();
  f.metadata["config"] = cfg.to_json().dump();
  save_safetensors(path, f);
}

nlohmann::json checkpoint_options(const SafeTensorsFile& ckpt, const std::string& path) {
  auto it = ckpt.metadata.find("format");
  DD_CHECK(it != ckpt.metadata.end() && it->second == kFormat, path, ": not a train_ddpm checkpoint (metadata ",
           "'format' is ", it == ckpt.metadata.end() ? std::string("missing") : "'" + it->second + "'", ")");
  return parse_meta(ckpt, path, "train");
}

void restore_checkpoint(const SafeTensorsFile& ckpt, const std::string& path, models::ParamSet& params, ag::Adam& adam,
                        models::Ema* ema, data::Loader& loader, Generator& gen, TrainState& state) {
  checkpoint_options(ckpt, path);
  const nlohmann::json st = parse_meta(ckpt, path, "state");
  try {
    const auto& ps = params.all();
    const auto adam_steps = st.at("adam_steps").get<std::vector<int64_t>>();
    DD_CHECK(adam_steps.size() == ps.size(), path, ": Adam state for ", adam_steps.size(), " parameters, model has ",
             ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      ag::Var v = ps[i].var;
      load_into(ckpt, path, "model/" + ps[i].name, ps[i], v.value());
      if (ckpt.contains("adam.exp_avg/" + ps[i].name)) {
        // Loaded in place: the moments are views into Adam's moment arenas.
        load_into(ckpt, path, "adam.exp_avg/" + ps[i].name, ps[i], adam.exp_avg()[i]);
        load_into(ckpt, path, "adam.exp_avg_sq/" + ps[i].name, ps[i], adam.exp_avg_sq()[i]);
      }
      adam.param_steps()[i] = adam_steps[i];
    }
    if (ema) {
      DD_CHECK(st.contains("ema"), path, ": the run was trained without EMA, but --ema-decay is on");
      models::EmaState es;
      es.last_step = st["ema"].at("last_step").get<int64_t>();
      es.averaged = st["ema"].at("averaged").get<int64_t>();
      es.initted = st["ema"].at("initted").get<bool>();
      for (const auto& p : ps) {
        Tensor t = Tensor::empty(p.var.shape(), p.var.value().device());
        load_into(ckpt, path, "ema/" + p.name, p, t);
        es.shadow.push_back(t);
      }
      ema->load_state(es);
    }
    gen.set_state(st.at("rng").at("seed").get<uint64_t>(), st.at("rng").at("offset").get<uint64_t>());
    data::LoaderState ls;
    ls.epoch = st.at("loader").at("epoch").get<uint64_t>();
    ls.position = st.at("loader").at("position").get<uint64_t>();
    loader.set_state(ls);
    state.step = st.at("step").get<int64_t>();
    state.elapsed_s = st.value("elapsed_s", 0.0);
  } catch (const nlohmann::json::exception& e) {
    DD_FAIL(path, ": checkpoint state is incomplete: ", e.what());
  }
}

}  // namespace dd::ddpm

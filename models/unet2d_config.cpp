// Unet2DConfig: diffusers' UNet2DModel config.json keys, read and written (models/unet2d.h).
#include <map>

#include "engine/error.h"
#include "models/unet2d.h"

namespace dd::models {

namespace {
bool is_down(const std::string& s) { return s == "DownBlock2D" || s == "AttnDownBlock2D"; }
bool is_up(const std::string& s) { return s == "UpBlock2D" || s == "AttnUpBlock2D"; }
}  // namespace

void Unet2DConfig::validate() const {
  const size_t n = block_out_channels.size();
  DD_CHECK(n >= 1, "UNet2DModel config: block_out_channels is empty");
  DD_CHECK(down_block_types.size() == n && up_block_types.size() == n, "UNet2DModel config: block_out_channels has ",
           n, " entries but down_block_types ", down_block_types.size(), " and up_block_types ", up_block_types.size(),
           " (diffusers requires the same number)");
  for (const auto& s : down_block_types)
    DD_CHECK(is_down(s), "UNet2DModel config: down_block_types entry '", s,
             "' is not supported (DownBlock2D or AttnDownBlock2D)");
  for (const auto& s : up_block_types)
    DD_CHECK(is_up(s), "UNet2DModel config: up_block_types entry '", s,
             "' is not supported (UpBlock2D or AttnUpBlock2D)");
  DD_CHECK(in_channels > 0 && out_channels > 0, "UNet2DModel config: in_channels and out_channels must be positive");
  DD_CHECK(layers_per_block >= 1, "UNet2DModel config: layers_per_block must be >= 1, got ", layers_per_block);
  DD_CHECK(norm_num_groups > 0, "UNet2DModel config: norm_num_groups must be positive");
  DD_CHECK(block_out_channels[0] >= 2, "UNet2DModel config: block_out_channels[0] must be >= 2 (time embedding)");
  DD_CHECK(downsample_padding >= 0, "UNet2DModel config: downsample_padding must be >= 0");
  DD_CHECK(dropout >= 0.0 && dropout < 1.0, "UNet2DModel config: dropout must be in [0, 1), got ", dropout);
  DD_CHECK(mid_block_scale_factor != 0.0, "UNet2DModel config: mid_block_scale_factor must not be 0");
  for (int c : block_out_channels) {
    DD_CHECK(c > 0 && c % norm_num_groups == 0, "UNet2DModel config: GroupNorm(", norm_num_groups, ", ", c,
             "): block_out_channels entry ", c, " is not divisible by norm_num_groups");
    DD_CHECK(attention_head_dim <= 0 || c % attention_head_dim == 0, "UNet2DModel config: ", c,
             " channels are not divisible by attention_head_dim ", attention_head_dim);
  }
}

nlohmann::json Unet2DConfig::to_json() const {
  nlohmann::json j = {{"_class_name", "UNet2DModel"},
                      {"_diffusers_version", "0.31.0"},
                      {"sample_size", sample_size},
                      {"in_channels", in_channels},
                      {"out_channels", out_channels},
                      {"center_input_sample", center_input_sample},
                      {"time_embedding_type", "positional"},
                      {"freq_shift", freq_shift},
                      {"flip_sin_to_cos", flip_sin_to_cos},
                      {"down_block_types", down_block_types},
                      {"up_block_types", up_block_types},
                      {"block_out_channels", block_out_channels},
                      {"layers_per_block", layers_per_block},
                      {"mid_block_scale_factor", mid_block_scale_factor},
                      {"downsample_padding", downsample_padding},
                      {"downsample_type", "conv"},
                      {"upsample_type", "conv"},
                      {"dropout", dropout},
                      {"act_fn", "silu"},
                      {"norm_num_groups", norm_num_groups},
                      {"norm_eps", norm_eps},
                      {"resnet_time_scale_shift", "default"},
                      {"add_attention", add_attention},
                      {"attn_norm_num_groups", nullptr},
                      {"class_embed_type", nullptr},
                      {"num_class_embeds", nullptr},
                      {"num_train_timesteps", nullptr}};
  j["attention_head_dim"] = attention_head_dim > 0 ? nlohmann::json(attention_head_dim) : nlohmann::json(nullptr);
  return j;
}

bool Unet2DConfig::is_unet2d_json(const nlohmann::json& j) {
  if (!j.is_object()) return false;
  if (j.contains("_class_name")) return j["_class_name"] == "UNet2DModel";
  return j.contains("block_out_channels") && j.contains("down_block_types");
}

Unet2DConfig Unet2DConfig::from_json(const nlohmann::json& j, const std::string& source) {
  DD_CHECK(j.is_object(), source, ": expected a JSON object (diffusers' UNet2DModel config), got ", j.dump());
  if (j.contains("_class_name"))
    DD_CHECK(j["_class_name"] == "UNet2DModel", source, ": _class_name is ", j["_class_name"].dump(),
             ", only UNet2DModel is supported");
  Unet2DConfig c;
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  auto get_int = [&](const char* k, int& dst) {
    if (!has(k)) return;
    DD_CHECK(j[k].is_number_integer(), source, ": '", k, "' must be an integer, got ", j[k].dump());
    dst = j[k].get<int>();
  };
  auto get_num = [&](const char* k, double& dst) {
    if (!has(k)) return;
    DD_CHECK(j[k].is_number(), source, ": '", k, "' must be a number, got ", j[k].dump());
    dst = j[k].get<double>();
  };
  auto get_bool = [&](const char* k, bool& dst) {
    if (!has(k)) return;
    DD_CHECK(j[k].is_boolean(), source, ": '", k, "' must be true or false, got ", j[k].dump());
    dst = j[k].get<bool>();
  };
  auto get_strs = [&](const char* k, std::vector<std::string>& dst) {
    if (!has(k)) return;
    DD_CHECK(j[k].is_array(), source, ": '", k, "' must be a list of strings, got ", j[k].dump());
    dst.clear();
    for (const auto& e : j[k]) {
      DD_CHECK(e.is_string(), source, ": '", k, "' must be a list of strings, got ", j[k].dump());
      dst.push_back(e.get<std::string>());
    }
  };
  auto require_str = [&](const char* k, std::initializer_list<const char*> ok) {
    if (!has(k)) return;
    DD_CHECK(j[k].is_string(), source, ": '", k, "' must be a string, got ", j[k].dump());
    const std::string v = j[k].get<std::string>();
    for (const char* o : ok)
      if (v == o) return;
    DD_CHECK(false, source, ": ", k, " = '", v, "' is not supported (supported: ", *ok.begin(), ")");
  };
  auto require_null = [&](const char* k) {
    DD_CHECK(!has(k), source, ": '", k, "' = ", has(k) ? j[k].dump() : "", " is not supported (must be null)");
  };
  if (has("sample_size")) {
    if (j["sample_size"].is_array()) {
      DD_CHECK(j["sample_size"].size() == 2 && j["sample_size"][0] == j["sample_size"][1], source,
               ": sample_size ", j["sample_size"].dump(), " must be square");
      c.sample_size = j["sample_size"][0].get<int>();
    } else {
      get_int("sample_size", c.sample_size);
    }
  }
  get_int("in_channels", c.in_channels);
  get_int("out_channels", c.out_channels);
  get_bool("center_input_sample", c.center_input_sample);
  get_bool("flip_sin_to_cos", c.flip_sin_to_cos);
  get_num("freq_shift", c.freq_shift);
  get_strs("down_block_types", c.down_block_types);
  get_strs("up_block_types", c.up_block_types);
  if (has("block_out_channels")) {
    const auto& m = j["block_out_channels"];
    DD_CHECK(m.is_array(), source, ": 'block_out_channels' must be a list of integers, got ", m.dump());
    c.block_out_channels.clear();
    for (const auto& e : m) {
      DD_CHECK(e.is_number_integer(), source, ": 'block_out_channels' must be a list of integers, got ", m.dump());
      c.block_out_channels.push_back(e.get<int>());
    }
  }
  get_int("layers_per_block", c.layers_per_block);
  get_num("mid_block_scale_factor", c.mid_block_scale_factor);
  get_int("downsample_padding", c.downsample_padding);
  get_num("dropout", c.dropout);
  if (j.contains("attention_head_dim")) {
    if (j["attention_head_dim"].is_null())
      c.attention_head_dim = 0;
    else
      get_int("attention_head_dim", c.attention_head_dim);
  }
  get_int("norm_num_groups", c.norm_num_groups);
  get_num("norm_eps", c.norm_eps);
  get_bool("add_attention", c.add_attention);
  require_str("time_embedding_type", {"positional"});
  require_str("act_fn", {"silu", "swish"});
  require_str("resnet_time_scale_shift", {"default"});
  require_str("downsample_type", {"conv"});
  require_str("upsample_type", {"conv"});
  require_null("class_embed_type");
  require_null("num_class_embeds");
  require_null("attn_norm_num_groups");
  try {
    c.validate();
  } catch (const std::exception& e) {
    DD_CHECK(false, source, ": ", e.what());
  }
  return c;
}

Unet2DConfig Unet2DConfig::ddpm_cifar10() {
  Unet2DConfig c;
  c.sample_size = 32;
  c.block_out_channels = {128, 256, 256, 256};
  c.down_block_types = {"DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"};
  c.layers_per_block = 2;
  c.attention_head_dim = 0;
  c.downsample_padding = 0;
  c.flip_sin_to_cos = false;
  c.freq_shift = 1.0;
  c.norm_eps = 1e-6;
  c.norm_num_groups = 32;
  c.mid_block_scale_factor = 1.0;
  return c;
}

std::map<std::string, Tensor> unet2d_canonical_state_dict(std::map<std::string, Tensor> tensors) {
  static const std::pair<const char*, const char*> kRenames[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : tensors) {
    std::string n = name;
    bool renamed = false;
    if (n.find(".attentions.") != std::string::npos)
      for (const auto& [from, to] : kRenames) {
        const size_t at = n.find(from);
        if (at != std::string::npos) {
          n = n.substr(0, at) + to + n.substr(at + std::string(from).size());
          renamed = true;
          break;
        }
      }
    Tensor v = t;
    // Conv-shaped [C, C, 1, 1] projections of some early checkpoints: the Linear's [C, C].
    if (renamed && v.ndim() == 4 && v.dim(2) == 1 && v.dim(3) == 1) v = v.reshape({v.dim(0), v.dim(1)});
    DD_CHECK(!out.count(n), "UNet2DModel weights: both '", name, "' and its other attention key style are present");
    out.emplace(n, v);
  }
  return out;
}

}  // namespace dd::models

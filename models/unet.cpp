#include "models/unet.h"

#include <atomic>
#include <cmath>

#include "autograd/activation.h"
#include "autograd/attention.h"
#include "autograd/broadcast.h"
#include "autograd/concat.h"
#include "autograd/conv2d.h"
#include "autograd/conv2d_keep.h"
#include "autograd/conv2d_norm_act.h"
#include "autograd/elementwise.h"
#include "autograd/group_norm.h"
#include "autograd/group_norm_act.h"
#include "autograd/linear.h"
#include "autograd/linear_attention.h"
#include "autograd/time_embedding.h"
#include "autograd/weight_standardize.h"
#include "engine/error.h"
#include "models/frozen_weights.h"
#include "models/layers.h"

namespace dd::models {

void UnetConfig::validate() const {
  DD_CHECK(dim > 0, "Unet config: dim must be positive, got ", dim);
  DD_CHECK(dim % 2 == 0 && dim >= 4, "Unet config: dim must be even and >= 4 (sinusoidal time embedding), got ", dim);
  DD_CHECK(init_dim >= 0 && out_dim >= 0, "Unet config: init_dim and out_dim must be >= 0 (0 = default)");
  // The seed concatenates the last up level (init_dim channels) with the init_conv copy and feeds
  // final_res_block(dim * 2): any other init_dim fails in PyTorch at the first forward.
  DD_CHECK(resolved_init_dim() == dim, "Unet config: init_dim (", init_dim, ") must equal dim (", dim,
           "): the seed's final_res_block takes dim * 2 channels");
  DD_CHECK(!dim_mults.empty(), "Unet config: dim_mults is empty");
  // size_divisor() is 1 << (levels - 1): more than 16 levels would overflow it (and halve any image to nothing).
  DD_CHECK(dim_mults.size() <= 16, "Unet config: ", dim_mults.size(), " dim_mults levels; at most 16");
  for (int m : dim_mults) DD_CHECK(m > 0, "Unet config: dim_mults entries must be positive");
  // Checked in 64 bits before dims are formed: dim * mult must not overflow (found by
  // tests/fuzz/fuzz_weights_config.cpp), and no real U-Net has 2^24 channels.
  for (int m : dim_mults)
    DD_CHECK(static_cast<int64_t>(dim) * m <= (int64_t{1} << 24), "Unet config: dim ", dim, " x dim_mult ", m,
             " is more than 2^24 channels");
  DD_CHECK(channels > 0, "Unet config: channels must be positive, got ", channels);
  DD_CHECK(resnet_block_groups > 0, "Unet config: resnet_block_groups must be positive");
  std::vector<int> dims{resolved_init_dim()};
  for (int m : dim_mults) dims.push_back(dim * m);
  for (int d : dims)
    DD_CHECK(d % resnet_block_groups == 0, "Unet config: GroupNorm(", resnet_block_groups, ", ", d,
             "): channel count ", d, " is not divisible by resnet_block_groups ", resnet_block_groups);
}

nlohmann::json UnetConfig::to_json() const {
  return {{"dim", dim},
          {"init_dim", resolved_init_dim()},
          {"out_dim", resolved_out_dim()},
          {"dim_mults", dim_mults},
          {"channels", channels},
          {"self_condition", self_condition},
          {"resnet_block_groups", resnet_block_groups}};
}

UnetConfig UnetConfig::from_json(const nlohmann::json& j) {
  DD_CHECK(j.is_object(), "Unet config: expected a JSON object, got ", j.dump());
  UnetConfig c;
  auto get_int = [&](const char* key, int& dst) {
    if (!j.contains(key) || j[key].is_null()) return;
    DD_CHECK(j[key].is_number_integer(), "Unet config: '", key, "' must be an integer, got ", j[key].dump());
    dst = j[key].get<int>();
  };
  get_int("dim", c.dim);
  get_int("init_dim", c.init_dim);
  get_int("out_dim", c.out_dim);
  get_int("channels", c.channels);
  get_int("resnet_block_groups", c.resnet_block_groups);
  if (j.contains("dim_mults") && !j["dim_mults"].is_null()) {
    const auto& m = j["dim_mults"];
    DD_CHECK(m.is_array(), "Unet config: 'dim_mults' must be a list of integers, got ", m.dump());
    c.dim_mults.clear();
    for (const auto& e : m) {
      DD_CHECK(e.is_number_integer(), "Unet config: 'dim_mults' must be a list of integers, got ", m.dump());
      c.dim_mults.push_back(e.get<int>());
    }
  }
  if (j.contains("self_condition") && !j["self_condition"].is_null()) {
    DD_CHECK(j["self_condition"].is_boolean(), "Unet config: 'self_condition' must be true or false, got ",
             j["self_condition"].dump());
    c.self_condition = j["self_condition"].get<bool>();
  }
  c.validate();
  return c;
}

namespace {
std::atomic<bool> g_fused_norm_act{true};
}  // namespace

void set_fused_norm_act(bool on) { g_fused_norm_act.store(on); }
bool fused_norm_act() { return g_fused_norm_act.load(); }

namespace {
std::atomic<bool> g_recompute_qkv{true};
}  // namespace

void set_recompute_qkv(bool on) { g_recompute_qkv.store(on); }
bool recompute_qkv() { return g_recompute_qkv.load(); }

namespace {

using layers::Conv;
using layers::GroupNorm;
using layers::Linear;

struct WsConv : Conv {
  using Conv::Conv;
  // The standardised weight, once a step; a sampler's chain (models/frozen_weights.h): once a chain.
  ag::Var standardized() const {
    if (weights_frozen() && !ag::grad_enabled())
      return ag::Var(frozen(w.value(), 0, [this] { return ag::weight_standardize(w, 1e-5f).value(); }));
    return ag::weight_standardize(w, 1e-5f);
  }
  ag::Var operator()(const std::vector<ag::Var>& xs) const { return ag::conv2d(xs, standardized(), b, pad); }
};

struct Block {
  WsConv proj;
  GroupNorm norm;
  Block() = default;
  Block(ParamSet& ps, Generator& g, const std::string& name, int cin, int cout, int groups)
      : proj(ps, g, name + ".proj", cin, cout, 3), norm(ps, name + ".norm", groups, cout) {}
  // x in channel parts: the skip concatenation, never built (ag::conv2d's parts form). bf16_out:
  // the output's one reader is a conv that reads it as bf16 (the fused op writes it so).
  ag::Var operator()(const std::vector<ag::Var>& x, const ag::Var* scale, const ag::Var* shift,
                     bool bf16_out = false) const {
    if (fused_norm_act())
      return ag::conv2d_group_norm_act(x, proj.standardized(), proj.b, proj.pad, norm.g, norm.b,
                                       scale ? *scale : ag::Var(), shift ? *shift : ag::Var(), norm.groups, norm.eps,
                                       bf16_out);
    ag::Var h = proj(x);
    h = norm(h);
    if (scale) h = ag::scale_shift(h, *scale, *shift);
    return ag::silu(h);
  }
};

struct ResnetBlock {
  Linear mlp;
  Block block1, block2;
  Conv res_conv;
  bool has_res = false;
  ResnetBlock() = default;
  ResnetBlock(ParamSet& ps, Generator& g, const std::string& name, int cin, int cout, int time_dim, int groups)
      : mlp(ps, g, name + ".mlp.1", time_dim, cout * 2),
        block1(ps, g, name + ".block1", cin, cout, groups),
        block2(ps, g, name + ".block2", cout, cout, groups),
        has_res(cin != cout) {
    if (has_res) res_conv = Conv(ps, g, name + ".res_conv", cin, cout, 1);
  }
  // temb_act: SiLU(time embedding), shared by every block (each block's nn.SiLU gives the same values).
  // x in channel parts: the seed's torch.cat of the up path's skip connections, read by block1 and
  // res_conv from the parts (the concatenation and its gradient's split were the step's only
  // passes that just copied).
  ag::Var operator()(const std::vector<ag::Var>& x, const ag::Var& temb_act) const {
    auto ss = ag::chunk(mlp(temb_act), 2);
    ag::Var h = block1(x, &ss[0], &ss[1], ag::conv_reads_bf16());  // read by block2's conv alone
    h = block2({h}, nullptr, nullptr);
    if (has_res) return ag::add(h, ag::conv2d(x, res_conv.w, res_conv.b, res_conv.pad));
    return ag::add(h, x.size() == 1 ? x[0] : ag::concat(x));
  }
};

// Residual(PreNorm(dim, LinearAttention(dim))) of the down/up levels.
struct LinearAttnBlock {
  GroupNorm prenorm;
  Conv to_qkv, to_out;
  GroupNorm out_norm;
  int heads = 4, dim_head = 32;
  LinearAttnBlock() = default;
  LinearAttnBlock(ParamSet& ps, Generator& g, const std::string& name, int ch, int heads_, int dim_head_)
      : heads(heads_), dim_head(dim_head_) {
    const int hidden = heads * dim_head;
    to_qkv = Conv(ps, g, name + ".fn.fn.to_qkv", ch, hidden * 3, 1, /*bias=*/false);
    to_out = Conv(ps, g, name + ".fn.fn.to_out.0", hidden, ch, 1);
    out_norm = GroupNorm(ps, name + ".fn.fn.to_out.1", 1, ch);
    prenorm = GroupNorm(ps, name + ".fn.norm", 1, ch);
  }
  // The PreNorm's one reader is the qkv conv, and h's to_out: where a conv reads its input as
  // bf16, both are written so.
  ag::Var operator()(const ag::Var& x) const {
    const bool bf16 = ag::conv_reads_bf16();
    const ag::Var h = recompute_qkv() ? ag::linear_attention_qkv(prenorm(x, bf16), to_qkv.w, heads, dim_head, bf16)
                                      : ag::linear_attention(to_qkv(prenorm(x, bf16)), heads, dim_head);
    return ag::add(out_norm(to_out(h)), x);
  }
};

// Residual(PreNorm(dim, Attention(dim))) in the middle.
struct AttnBlock {
  GroupNorm prenorm;
  Conv to_qkv, to_out;
  int heads = 4, dim_head = 32;
  AttnBlock() = default;
  AttnBlock(ParamSet& ps, Generator& g, const std::string& name, int ch, int heads_, int dim_head_)
      : heads(heads_), dim_head(dim_head_) {
    const int hidden = heads * dim_head;
    to_qkv = Conv(ps, g, name + ".fn.fn.to_qkv", ch, hidden * 3, 1, /*bias=*/false);
    to_out = Conv(ps, g, name + ".fn.fn.to_out", hidden, ch, 1);
    prenorm = GroupNorm(ps, name + ".fn.norm", 1, ch);
  }
  ag::Var operator()(const ag::Var& x) const {  // the PreNorm's one reader is to_qkv, as above
    return ag::add(to_out(ag::attention(to_qkv(prenorm(x, ag::conv_reads_bf16())), heads, dim_head)), x);
  }
};

struct Level {
  ResnetBlock block1, block2;
  LinearAttnBlock attn;
  Conv resample;        // Downsample's / Upsample's conv, or the plain 3x3 conv of the last level
  bool scaled = false;  // pixel-unshuffle before (down) or nearest 2x upsample before (up)
};

}  // namespace

struct Unet::Impl {
  Conv init_conv;
  Linear time1, time2;
  std::vector<Level> downs, ups;
  ResnetBlock mid_block1, mid_block2, final_res_block;
  AttnBlock mid_attn;
  Conv final_conv;
  int dim = 0;
};

Unet::~Unet() = default;

Unet::Unet(const UnetConfig& cfg, Generator& gen) : cfg_(cfg), impl_(std::make_unique<Impl>()) {
  cfg_.validate();
  Impl& m = *impl_;
  ParamSet& ps = params_;
  const int dim = cfg_.dim, groups = cfg_.resnet_block_groups;
  const int heads = cfg_.attn_heads, dh = cfg_.attn_dim_head;
  m.dim = dim;
  const int input_channels = cfg_.channels * (cfg_.self_condition ? 2 : 1);
  const int init_dim = cfg_.resolved_init_dim();
  m.init_conv = Conv(ps, gen, "init_conv", input_channels, init_dim, 1);

  std::vector<int> dims{init_dim};
  for (int mlt : cfg_.dim_mults) dims.push_back(dim * mlt);
  const int levels = static_cast<int>(cfg_.dim_mults.size());

  const int time_dim = dim * 4;
  m.time1 = Linear(ps, gen, "time_mlp.1", dim, time_dim);
  m.time2 = Linear(ps, gen, "time_mlp.3", time_dim, time_dim);

  for (int i = 0; i < levels; ++i) {
    const int din = dims[i], dout = dims[i + 1];
    const std::string p = "downs." + std::to_string(i);
    Level L;
    L.block1 = ResnetBlock(ps, gen, p + ".0", din, din, time_dim, groups);
    L.block2 = ResnetBlock(ps, gen, p + ".1", din, din, time_dim, groups);
    L.attn = LinearAttnBlock(ps, gen, p + ".2", din, heads, dh);
    L.scaled = i < levels - 1;
    L.resample = L.scaled ? Conv(ps, gen, p + ".3.1", din * 4, dout, 1) : Conv(ps, gen, p + ".3", din, dout, 3);
    m.downs.push_back(std::move(L));
  }
  const int mid = dims.back();
  m.mid_block1 = ResnetBlock(ps, gen, "mid_block1", mid, mid, time_dim, groups);
  m.mid_attn = AttnBlock(ps, gen, "mid_attn", mid, heads, dh);
  m.mid_block2 = ResnetBlock(ps, gen, "mid_block2", mid, mid, time_dim, groups);
  for (int i = 0; i < levels; ++i) {
    const int din = dims[levels - 1 - i], dout = dims[levels - i];
    const std::string p = "ups." + std::to_string(i);
    Level L;
    L.block1 = ResnetBlock(ps, gen, p + ".0", dout + din, dout, time_dim, groups);
    L.block2 = ResnetBlock(ps, gen, p + ".1", dout + din, dout, time_dim, groups);
    L.attn = LinearAttnBlock(ps, gen, p + ".2", dout, heads, dh);
    L.scaled = i < levels - 1;
    L.resample = L.scaled ? Conv(ps, gen, p + ".3.1", dout, din, 3) : Conv(ps, gen, p + ".3", dout, din, 3);
    m.ups.push_back(std::move(L));
  }
  m.final_res_block = ResnetBlock(ps, gen, "final_res_block", dim * 2, dim, time_dim, groups);
  m.final_conv = Conv(ps, gen, "final_conv", dim, cfg_.resolved_out_dim(), 1);
  ps.pack();  // every weight a view into one arena from here on (see ParamSet)
}

ag::Var Unet::forward(const ag::Var& x_in, const Tensor& t, const ag::Var& x_self_cond) {
  const Impl& m = *impl_;
  const Shape& xs = x_in.shape();
  DD_CHECK(xs.size() == 4 && xs[3] == cfg_.channels, "Unet: input must be [B, H, W, ", cfg_.channels,
           "] (NHWC), got ", shape_str(xs));
  const int div = cfg_.size_divisor();
  DD_CHECK(xs[1] % div == 0 && xs[2] % div == 0, "Unet: image size ", xs[1], "x", xs[2], " is not divisible by ",
           div, " (one halving per level of dim_mults but the last)");
  DD_CHECK(t.ndim() == 1 && t.dim(0) == xs[0], "Unet: t must be [", xs[0], "], got ", shape_str(t.shape()));

  ag::Var x = x_in;
  if (cfg_.self_condition) {
    ag::Var sc = x_self_cond;
    if (!sc.defined()) sc = ag::Var(Tensor::zeros(xs, x_in.value().device()));
    DD_CHECK(sc.shape() == xs, "Unet: x_self_cond must have x's shape ", shape_str(xs), ", got ",
             shape_str(sc.shape()));
    x = ag::conv2d(std::vector<ag::Var>{sc, x}, m.init_conv.w, m.init_conv.b, m.init_conv.pad);
  } else {
    x = m.init_conv(x);
  }
  const ag::Var residual = x;

  ag::Var temb = m.time2(ag::gelu(m.time1(ag::time_embedding(ag::Var(t), m.dim))));
  const ag::Var temb_act = ag::silu(temb);

  std::vector<ag::Var> saved;
  for (const Level& L : m.downs) {
    x = L.block1({x}, temb_act);
    saved.push_back(x);
    x = L.block2({x}, temb_act);
    x = L.attn(x);
    saved.push_back(x);
    // Downsample (the 2x2 rearrange, then its 1x1 conv) as one op: the conv reads x through the
    // permutation instead of a rearranged copy.
    x = L.scaled ? ag::conv2d_unshuffle2(x, L.resample.w, L.resample.b, L.resample.pad) : L.resample(x);
  }
  x = m.mid_block1({x}, temb_act);
  x = m.mid_attn(x);
  x = m.mid_block2({x}, temb_act);
  for (const Level& L : m.ups) {
    x = L.block1({x, saved.back()}, temb_act);
    saved.pop_back();
    x = L.block2({x, saved.back()}, temb_act);
    saved.pop_back();
    x = L.attn(x);
    // Upsample (nearest 2x, then its 3x3 conv) as one op: the conv reads x's pixels twice over
    // instead of a 4x copy of x.
    x = L.scaled ? ag::conv2d_up2(x, L.resample.w, L.resample.b, L.resample.pad) : L.resample(x);
  }
  x = m.final_res_block({x, residual}, temb_act);
  return m.final_conv(x);
}

}  // namespace dd::models

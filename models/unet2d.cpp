// diffusers' UNet2DModel (models/unet2d.h), block by block as diffusers 0.31.0 runs it, in NHWC:
//   Timesteps: get_timestep_embedding(t, C0, flip_sin_to_cos, freq_shift) -> TimestepEmbedding
//     (linear_1, SiLU, linear_2); each ResnetBlock2D applies SiLU then its time_emb_proj.
//   ResnetBlock2D: h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(emb)); h = conv2(dropout(SiLU(norm2(h))));
//     out = (shortcut(x) + h) / output_scale_factor (shortcut a 1x1 conv when channels change).
//   Attention (the deprecated attention block: group_norm, to_q/k/v/out.0 with bias, residual):
//     out = (to_out(softmax(q k^T / sqrt(d)) v) + x) / rescale_output_factor.
//   Downsample2D: padding 0 -> F.pad(0, 1, 0, 1) then 3x3 stride 2; padding p -> 3x3 stride 2 pad p.
//   Upsample2D: nearest 2x, then a 3x3 conv.
//   Down blocks keep every resnet/attention output and the downsampler's for the skips (plus
//   conv_in's); each up block has layers_per_block + 1 resnets, each eating the last skip.
//   Mid: resnet, attention (add_attention), resnet, all with mid_block_scale_factor.
//   Out: conv_out(SiLU(conv_norm_out(x))).
#include "models/unet2d.h"

#include <cmath>

#include "autograd/activation.h"
#include "autograd/attention.h"
#include "autograd/broadcast.h"
#include "autograd/concat.h"
#include "autograd/dropout.h"
#include "autograd/elementwise.h"
#include "autograd/group_norm_act.h"
#include "autograd/upsample.h"
#include "engine/error.h"
#include "kernels/timestep_embedding.h"
#include "models/layers.h"

namespace dd::models {

namespace {
using layers::Conv;
using layers::GroupNorm;
using layers::Linear;

struct Ctx {
  const ag::Var* temb_act;  // SiLU(emb), [B, temb]
  Generator* dropout_gen;   // training mode when set
  float dropout;
};

ag::Var scale_by(const ag::Var& x, double factor) {
  return factor == 1.0 ? x : ag::affine(x, static_cast<float>(1.0 / factor), 0.0f);
}

struct ResnetBlock {
  GroupNorm norm1, norm2;
  Conv conv1, conv2, shortcut;
  Linear temb_proj;
  bool has_shortcut = false;
  double out_scale = 1.0;
  ResnetBlock() = default;
  ResnetBlock(ParamSet& ps, Generator& g, const std::string& p, int cin, int cout, int temb, const Unet2DConfig& c,
              double out_scale_)
      : out_scale(out_scale_) {
    norm1 = GroupNorm(ps, p + ".norm1", c.norm_num_groups, cin, static_cast<float>(c.norm_eps));
    conv1 = Conv(ps, g, p + ".conv1", cin, cout, 3);
    temb_proj = Linear(ps, g, p + ".time_emb_proj", temb, cout);
    norm2 = GroupNorm(ps, p + ".norm2", c.norm_num_groups, cout, static_cast<float>(c.norm_eps));
    conv2 = Conv(ps, g, p + ".conv2", cout, cout, 3);
    has_shortcut = cin != cout;
    if (has_shortcut) shortcut = Conv(ps, g, p + ".conv_shortcut", cin, cout, 1);
  }
  ag::Var operator()(const ag::Var& x, const Ctx& ctx) const {
    ag::Var h = ag::group_norm_act(x, norm1.g, norm1.b, ag::Var(), ag::Var(), norm1.groups, norm1.eps);
    h = ag::add_bc(conv1(h), temb_proj(*ctx.temb_act));
    h = ag::group_norm_act(h, norm2.g, norm2.b, ag::Var(), ag::Var(), norm2.groups, norm2.eps);
    if (ctx.dropout_gen && ctx.dropout > 0.0f)
      h = ag::dropout(h, ctx.dropout, ctx.dropout_gen->seed(), ctx.dropout_gen->reserve_at(h.value().numel()));
    h = conv2(h);
    return scale_by(ag::add(has_shortcut ? shortcut(x) : x, h), out_scale);
  }
};

struct AttnBlock {
  GroupNorm norm;
  Linear to_q, to_k, to_v, to_out;
  int heads = 1, dim_head = 1;
  double rescale = 1.0;
  AttnBlock() = default;
  AttnBlock(ParamSet& ps, Generator& g, const std::string& p, int ch, const Unet2DConfig& c, double rescale_)
      : rescale(rescale_) {
    heads = c.heads_for(ch);
    dim_head = ch / heads;
    norm = GroupNorm(ps, p + ".group_norm", c.norm_num_groups, ch, static_cast<float>(c.norm_eps));
    to_q = Linear(ps, g, p + ".to_q", ch, ch);
    to_k = Linear(ps, g, p + ".to_k", ch, ch);
    to_v = Linear(ps, g, p + ".to_v", ch, ch);
    to_out = Linear(ps, g, p + ".to_out.0", ch, ch);
  }
  ag::Var operator()(const ag::Var& x) const {
    const Shape& s = x.shape();
    const int64_t rows = s[0] * s[1] * s[2], ch = s[3];
    ag::Var h = ag::reshape(norm(x), {rows, ch});
    ag::Var qkv = ag::reshape(ag::concat({to_q(h), to_k(h), to_v(h)}), {s[0], s[1] * s[2], 3 * ch});
    ag::Var o = ag::reshape(ag::attention(qkv, heads, dim_head), {rows, ch});
    return scale_by(ag::add(ag::reshape(to_out(o), s), x), rescale);
  }
};

struct Level {
  std::vector<ResnetBlock> resnets;
  std::vector<AttnBlock> attns;  // empty for DownBlock2D / UpBlock2D
  Conv sampler;                  // downsamplers.0.conv / upsamplers.0.conv
  bool has_sampler = false;
};
}  // namespace

struct Unet2D::Impl {
  Conv conv_in, conv_out;
  Linear lin1, lin2;
  std::vector<Level> downs, ups;
  ResnetBlock mid_res0, mid_res1;
  AttnBlock mid_attn;
  bool mid_has_attn = true;
  GroupNorm norm_out;
  std::vector<float> freqs;
  Tensor freqs_dev;  // freqs on the device of the last forward
};

Unet2D::~Unet2D() = default;

Unet2D::Unet2D(const Unet2DConfig& cfg, Generator& gen) : cfg_(cfg), impl_(std::make_unique<Impl>()) {
  cfg_.validate();
  Impl& m = *impl_;
  ParamSet& ps = params_;
  const auto& boc = cfg_.block_out_channels;
  const int n = static_cast<int>(boc.size()), L = cfg_.layers_per_block;
  const int temb = boc[0] * 4;
  m.conv_in = Conv(ps, gen, "conv_in", cfg_.in_channels, boc[0], 3);
  m.lin1 = Linear(ps, gen, "time_embedding.linear_1", boc[0], temb);
  m.lin2 = Linear(ps, gen, "time_embedding.linear_2", temb, temb);
  m.freqs = kernels::timestep_frequencies(boc[0], cfg_.freq_shift);

  int out_ch = boc[0];
  for (int i = 0; i < n; ++i) {
    const int in_ch = out_ch;
    out_ch = boc[i];
    const std::string p = "down_blocks." + std::to_string(i);
    const bool attn = cfg_.down_block_types[i] == "AttnDownBlock2D";
    Level lv;
    for (int j = 0; j < L; ++j) {
      lv.resnets.emplace_back(ps, gen, p + ".resnets." + std::to_string(j), j == 0 ? in_ch : out_ch, out_ch, temb,
                              cfg_, 1.0);
      if (attn) lv.attns.emplace_back(ps, gen, p + ".attentions." + std::to_string(j), out_ch, cfg_, 1.0);
    }
    lv.has_sampler = i < n - 1;
    if (lv.has_sampler) {
      lv.sampler = Conv(ps, gen, p + ".downsamplers.0.conv", out_ch, out_ch, 3);
      const int pd = cfg_.downsample_padding;
      lv.sampler.geo = pd == 0 ? kernels::Conv2dGeometry{2, 0, 0, 1, 1} : kernels::Conv2dGeometry{2, pd, pd, pd, pd};
    }
    m.downs.push_back(std::move(lv));
  }
  const int mid = boc.back();
  const double msf = cfg_.mid_block_scale_factor;
  m.mid_res0 = ResnetBlock(ps, gen, "mid_block.resnets.0", mid, mid, temb, cfg_, msf);
  m.mid_has_attn = cfg_.add_attention;
  if (m.mid_has_attn) m.mid_attn = AttnBlock(ps, gen, "mid_block.attentions.0", mid, cfg_, msf);
  m.mid_res1 = ResnetBlock(ps, gen, "mid_block.resnets.1", mid, mid, temb, cfg_, msf);

  out_ch = boc.back();
  for (int i = 0; i < n; ++i) {
    const int prev_out = out_ch;
    out_ch = boc[n - 1 - i];
    const int in_ch = boc[std::max(n - 2 - i, 0)];
    const std::string p = "up_blocks." + std::to_string(i);
    const bool attn = cfg_.up_block_types[i] == "AttnUpBlock2D";
    Level lv;
    for (int j = 0; j <= L; ++j) {
      const int skip = j == L ? in_ch : out_ch;
      const int res_in = j == 0 ? prev_out : out_ch;
      lv.resnets.emplace_back(ps, gen, p + ".resnets." + std::to_string(j), res_in + skip, out_ch, temb, cfg_, 1.0);
      if (attn) lv.attns.emplace_back(ps, gen, p + ".attentions." + std::to_string(j), out_ch, cfg_, 1.0);
    }
    lv.has_sampler = i < n - 1;
    if (lv.has_sampler) lv.sampler = Conv(ps, gen, p + ".upsamplers.0.conv", out_ch, out_ch, 3);
    m.ups.push_back(std::move(lv));
  }
  m.norm_out = GroupNorm(ps, "conv_norm_out", cfg_.norm_num_groups, boc[0], static_cast<float>(cfg_.norm_eps));
  m.conv_out = Conv(ps, gen, "conv_out", boc[0], cfg_.out_channels, 3);
  ps.pack();
}

ag::Var Unet2D::forward(const ag::Var& x_in, const Tensor& t, const ag::Var&) {
  Impl& m = *impl_;
  const Shape& xs = x_in.shape();
  DD_CHECK(xs.size() == 4 && xs[3] == cfg_.in_channels, "UNet2DModel: input must be [B, H, W, ", cfg_.in_channels,
           "] (NHWC), got ", shape_str(xs));
  const int div = cfg_.size_divisor();
  DD_CHECK(xs[1] % div == 0 && xs[2] % div == 0, "UNet2DModel: image size ", xs[1], "x", xs[2],
           " is not divisible by ", div, " (one halving per block but the last)");
  DD_CHECK(t.ndim() == 1 && t.dim(0) == xs[0], "UNet2DModel: t must be [", xs[0], "], got ", shape_str(t.shape()));

  if (!m.freqs_dev.defined() || m.freqs_dev.device() != t.device())
    m.freqs_dev = Tensor::from_vector({static_cast<int64_t>(m.freqs.size())}, m.freqs, t.device());
  const int c0 = cfg_.block_out_channels[0];
  ag::Var temb(kernels::timestep_embedding(t, m.freqs_dev, c0, cfg_.flip_sin_to_cos));
  temb = m.lin2(ag::silu(m.lin1(temb)));
  const ag::Var temb_act = ag::silu(temb);
  const Ctx ctx{&temb_act, dropout_gen_, static_cast<float>(cfg_.dropout)};

  ag::Var x = cfg_.center_input_sample ? ag::affine(x_in, 2.0f, -1.0f) : x_in;
  x = m.conv_in(x);
  std::vector<ag::Var> skips{x};
  for (const Level& lv : m.downs) {
    for (size_t j = 0; j < lv.resnets.size(); ++j) {
      x = lv.resnets[j](x, ctx);
      if (!lv.attns.empty()) x = lv.attns[j](x);
      skips.push_back(x);
    }
    if (lv.has_sampler) {
      x = lv.sampler(x);
      skips.push_back(x);
    }
  }
  x = m.mid_res0(x, ctx);
  if (m.mid_has_attn) x = m.mid_attn(x);
  x = m.mid_res1(x, ctx);
  for (const Level& lv : m.ups) {
    for (size_t j = 0; j < lv.resnets.size(); ++j) {
      x = ag::concat({x, skips.back()});
      skips.pop_back();
      x = lv.resnets[j](x, ctx);
      if (!lv.attns.empty()) x = lv.attns[j](x);
    }
    if (lv.has_sampler) x = lv.sampler(ag::upsample2x(x));
  }
  x = ag::group_norm_act(x, m.norm_out.g, m.norm_out.b, ag::Var(), ag::Var(), m.norm_out.groups, m.norm_out.eps);
  return m.conv_out(x);
}

}  // namespace dd::models

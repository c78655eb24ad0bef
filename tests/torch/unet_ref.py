"""The seed U-Net (seed 003: annotated-diffusion's Unet) in PyTorch, the peer our engine is checked
against. Written without einops (Debian's python has none); each rearrange is spelled out with
reshape/permute. Module and attribute names are the seed's, so state_dict keys match ours.

`exact_time_embedding=True` evaluates the sinusoidal embedding's exp/sin/cos in float64 and rounds
to float32 (the float32 products stay float32). torch's own float32 exp/sin are vectorised
approximations (up to 1 ulp off; 6e-5 absolute at t ~ 1000 after the product); glibc's, which our
CPU backend uses, are correctly rounded in practice. With it on, both sides compute the same numbers.
"""
import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import einsum, nn

EXACT_TIME_EMBEDDING = False


def exists(x):
    return x is not None


def default(val, d):
    return val if exists(val) else (d() if callable(d) else d)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


def space_to_channels(x):
    # rearrange "b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


class SpaceToChannels(nn.Module):
    def forward(self, x):
        return space_to_channels(x)


def Upsample(dim, dim_out=None):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(dim, default(dim_out, dim), 3, padding=1))


def Downsample(dim, dim_out=None):
    return nn.Sequential(SpaceToChannels(), nn.Conv2d(dim * 4, default(dim_out, dim), 1))


class SinusoidalPositionEmbeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        half_dim = self.dim // 2
        log_factor = math.log(10000) / (half_dim - 1)
        if EXACT_TIME_EMBEDDING:
            arg = torch.arange(half_dim, device=time.device).float() * torch.tensor(-log_factor).float()
            exponent = torch.exp(arg.double()).float()
            expanded = (time.float()[:, None] * exponent[None, :]).double()
            return torch.cat((expanded.sin(), expanded.cos()), dim=-1).float()
        exponent = torch.exp(torch.arange(half_dim, device=time.device) * -log_factor)
        expanded = time[:, None] * exponent[None, :]
        return torch.cat((expanded.sin(), expanded.cos()), dim=-1)


class WeightStandardizedConv2d(nn.Conv2d):
    """annotated-diffusion's: weights standardised per output channel (biased variance)."""

    def forward(self, x):
        # float64 is the parity test's exact reference for the float32 computation, so it takes
        # float32's eps; the seed's 1e-3 is for half precision.
        eps = 1e-5 if x.dtype in (torch.float32, torch.float64) else 1e-3
        weight = self.weight
        mean = weight.mean(dim=(1, 2, 3), keepdim=True)
        var = weight.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
        normalized_weight = (weight - mean) * (var + eps).rsqrt()
        return F.conv2d(x, normalized_weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.proj = WeightStandardizedConv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.proj(x)
        x = self.norm(x)
        if exists(scale_shift):
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, *, time_emb_dim=None, groups=8):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2)) if exists(time_emb_dim) else None
        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        scale_shift = None
        if exists(self.mlp) and exists(time_emb):
            time_emb = self.mlp(time_emb)
            time_emb = time_emb[:, :, None, None]
            scale_shift = time_emb.chunk(2, dim=1)
        h = self.block1(x, scale_shift=scale_shift)
        h = self.block2(h)
        return h + self.res_conv(x)


def heads_split(t, heads):
    # rearrange "b (h c) x y -> b h c (x y)"
    b, hc, x, y = t.shape
    return t.reshape(b, heads, hc // heads, x * y)


class Attention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden_dim = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = [heads_split(t, self.heads) for t in qkv]
        q = q * self.scale
        sim = einsum("b h d i, b h d j -> b h i j", q, k)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        out = einsum("b h i j, b h d j -> b h i d", attn, v)
        # rearrange "b h (x y) d -> b (h d) x y"
        out = out.permute(0, 1, 3, 2).reshape(b, -1, h, w)
        return self.to_out(out)


class LinearAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden_dim = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = [heads_split(t, self.heads) for t in qkv]
        q = q.softmax(dim=-2)
        k = k.softmax(dim=-1)
        q = q * self.scale
        context = torch.einsum("b h d n, b h e n -> b h d e", k, v)
        out = torch.einsum("b h d e, b h d n -> b h e n", context, q)
        # rearrange "b h c (x y) -> b (h c) x y"
        out = out.reshape(b, -1, h, w)
        return self.to_out(out)


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = nn.GroupNorm(1, dim)

    def forward(self, x):
        return self.fn(self.norm(x))


class Unet(nn.Module):
    def __init__(self, dim, init_dim=None, out_dim=None, dim_mults=(1, 2, 4, 8), channels=3, self_condition=False,
                 resnet_block_groups=4):
        super().__init__()
        self.channels = channels
        self.self_condition = self_condition
        input_channels = channels * (2 if self_condition else 1)

        init_dim = default(init_dim, dim)
        self.init_conv = nn.Conv2d(input_channels, init_dim, 1, padding=0)

        dims = [init_dim, *map(lambda m: dim * m, dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        block_cls = partial(ResnetBlock, groups=resnet_block_groups)

        time_dim = dim * 4
        self.time_mlp = nn.Sequential(SinusoidalPositionEmbeddings(dim), nn.Linear(dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))

        self.downs = nn.ModuleList([])
        self.ups = nn.ModuleList([])
        total_resolutions = len(in_out)
        for idx, (dim_in, dim_out) in enumerate(in_out):
            last_layer = idx >= (total_resolutions - 1)
            self.downs.append(nn.ModuleList([
                block_cls(dim_in, dim_in, time_emb_dim=time_dim),
                block_cls(dim_in, dim_in, time_emb_dim=time_dim),
                Residual(PreNorm(dim_in, LinearAttention(dim_in))),
                Downsample(dim_in, dim_out) if not last_layer else nn.Conv2d(dim_in, dim_out, 3, padding=1),
            ]))

        mid_dim = dims[-1]
        self.mid_block1 = block_cls(mid_dim, mid_dim, time_emb_dim=time_dim)
        self.mid_attn = Residual(PreNorm(mid_dim, Attention(mid_dim)))
        self.mid_block2 = block_cls(mid_dim, mid_dim, time_emb_dim=time_dim)

        for idx, (dim_in, dim_out) in enumerate(reversed(in_out)):
            final_layer = idx == (len(in_out) - 1)
            self.ups.append(nn.ModuleList([
                block_cls(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                block_cls(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                Residual(PreNorm(dim_out, LinearAttention(dim_out))),
                Upsample(dim_out, dim_in) if not final_layer else nn.Conv2d(dim_out, dim_in, 3, padding=1),
            ]))

        self.out_dim = default(out_dim, channels)
        self.final_res_block = block_cls(dim * 2, dim, time_emb_dim=time_dim)
        self.final_conv = nn.Conv2d(dim, self.out_dim, 1)

    def forward(self, x, time, x_self_cond=None):
        if self.self_condition:
            x_self_cond = default(x_self_cond, lambda: torch.zeros_like(x))
            x = torch.cat((x_self_cond, x), dim=1)
        x = self.init_conv(x)
        residual_copy = x.clone()
        time_embed = self.time_mlp(time)
        saved = []
        for block1, block2, attn, downsample in self.downs:
            x = block1(x, time_embed)
            saved.append(x)
            x = block2(x, time_embed)
            x = attn(x)
            saved.append(x)
            x = downsample(x)
        x = self.mid_block1(x, time_embed)
        x = self.mid_attn(x)
        x = self.mid_block2(x, time_embed)
        for block1, block2, attn, upsample in self.ups:
            x = torch.cat((x, saved.pop()), dim=1)
            x = block1(x, time_embed)
            x = torch.cat((x, saved.pop()), dim=1)
            x = block2(x, time_embed)
            x = attn(x)
            x = upsample(x)
        x = torch.cat((x, residual_copy), dim=1)
        x = self.final_res_block(x, time_embed)
        return self.final_conv(x)


MODEL_KEYS = ("dim", "init_dim", "out_dim", "dim_mults", "channels", "self_condition", "resnet_block_groups")


def unet_from_config(config):
    kwargs = {k: config[k] for k in MODEL_KEYS if k in config}
    if "dim_mults" in kwargs:
        kwargs["dim_mults"] = tuple(kwargs["dim_mults"])
    return Unet(**kwargs)

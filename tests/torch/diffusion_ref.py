#!/usr/bin/python3
"""Torch reference for the DDPM schedules and the reverse step of seed 003.

Run with Debian's /usr/bin/python3 (it has torch). Data is exchanged as raw
little-endian arrays (.f32 float32, .f64 float64), row-major, with shapes in
text files, until the engine's safetensors reader lands.

  diffusion_ref.py schedules OUT T [T ...]
      For each schedule and T writes OUT/<schedule>_<T>_<buffer>.f64 (the seed's
      formulas evaluated in float64) and .f32 (the seed's own float32 code).
  diffusion_ref.py p_sample DIR
      Reads DIR/meta.txt ("B H W C", "schedule T t [t ...]") and DIR/x.f32,
      eps.f32, noise.f32 (NHWC), runs the seed's p_sample at each t with the
      model output replaced by eps and torch.randn_like by noise, in NCHW, and
      writes DIR/out_seed_<t>.f32 (the seed's float32 buffers) and
      DIR/out_f64buf_<t>.f32 (buffers computed in float64 and cast to float32,
      as lucidrains' GaussianDiffusion registers them), both NHWC.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

# The seed's schedules, verbatim apart from the dtype argument (the seed uses
# torch's default float32).


def cosine_beta_schedule(timesteps, s=0.008, dtype=torch.float32):
    steps = timesteps + 1
    x = torch.linspace(0, timesteps, steps, dtype=dtype)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * torch.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0.0001, 0.9999)


def linear_beta_schedule(timesteps, dtype=torch.float32):
    start, end = 0.0001, 0.02
    return torch.linspace(start, end, timesteps, dtype=dtype)


def quadratic_beta_schedule(timesteps, dtype=torch.float32):
    start, end = 0.0001, 0.02
    return torch.linspace(start**0.5, end**0.5, timesteps, dtype=dtype) ** 2


def sigmoid_beta_schedule(timesteps, dtype=torch.float32):
    start, end = 0.0001, 0.02
    rng = torch.linspace(-6, 6, timesteps, dtype=dtype)
    return torch.sigmoid(rng) * (end - start) + start


SCHEDULES = {
    "linear": linear_beta_schedule,
    "cosine": cosine_beta_schedule,
    "quadratic": quadratic_beta_schedule,
    "sigmoid": sigmoid_beta_schedule,
}


def buffers(name, timesteps, dtype):
    """The seed's buffers plus lucidrains' two x0-from-noise buffers."""
    betas = SCHEDULES[name](timesteps, dtype=dtype)
    alphas = 1. - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    sqrt_recip_alphas = torch.sqrt(1.0 / alphas)
    sqrt_alphas_cumprod = torch.sqrt(alphas_cumprod)
    sqrt_one_minus_alphas_cumprod = torch.sqrt(1. - alphas_cumprod)
    posterior_variance = betas * (1. - alphas_cumprod_prev) / (1. - alphas_cumprod)
    sqrt_recip_alphas_cumprod = torch.sqrt(1. / alphas_cumprod)
    sqrt_recipm1_alphas_cumprod = torch.sqrt(1. / alphas_cumprod - 1)
    return {
        "betas": betas,
        "alphas": alphas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_recip_alphas": sqrt_recip_alphas,
        "sqrt_alphas_cumprod": sqrt_alphas_cumprod,
        "sqrt_one_minus_alphas_cumprod": sqrt_one_minus_alphas_cumprod,
        "posterior_variance": posterior_variance,
        "sqrt_recip_alphas_cumprod": sqrt_recip_alphas_cumprod,
        "sqrt_recipm1_alphas_cumprod": sqrt_recipm1_alphas_cumprod,
    }


def write(path, array):
    # Written under a temporary name and renamed, so a reader never sees half a file.
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    os.replace(tmp, path)


def read_f32(path, shape):
    a = np.fromfile(path, dtype="<f4")
    if a.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: {a.size} floats, expected shape {shape}")
    return torch.from_numpy(a.reshape(shape).astype(np.float32))


def cmd_schedules(out, ts):
    for name in SCHEDULES:
        for T in ts:
            for dtype, ext in ((torch.float64, "f64"), (torch.float32, "f32")):
                for buf, v in buffers(name, T, dtype).items():
                    write(os.path.join(out, f"{name}_{T}_{buf}.{ext}"), v.numpy())


def extract(a, t, x_shape):
    bsz = t.shape[0]
    out = a.gather(-1, t.cpu())
    return out.reshape(bsz, *((1,) * (len(x_shape) - 1))).to(t.device)


def seed_p_sample(bufs, eps, noise, x, t, t_index):
    """The seed's p_sample with model(x, t) -> eps and torch.randn_like(x) -> noise."""
    betas_t = extract(bufs["betas"], t, x.shape)
    sqrt_one_minus_cumprod_t = extract(bufs["sqrt_one_minus_alphas_cumprod"], t, x.shape)
    sqrt_recip_alpha_t = extract(bufs["sqrt_recip_alphas"], t, x.shape)
    model_mean = sqrt_recip_alpha_t * (x - betas_t * eps / sqrt_one_minus_cumprod_t)
    if t_index == 0:
        return model_mean
    var_t = extract(bufs["posterior_variance"], t, x.shape)
    return model_mean + torch.sqrt(var_t) * noise


def cmd_p_sample(d):
    with open(os.path.join(d, "meta.txt")) as f:
        B, H, W, C = (int(v) for v in f.readline().split())
        name, T, *ts = f.readline().split()
        T, ts = int(T), [int(v) for v in ts]
    nhwc = (B, H, W, C)
    to_nchw = lambda a: a.permute(0, 3, 1, 2).contiguous()
    x, eps, noise = (to_nchw(read_f32(os.path.join(d, f + ".f32"), nhwc)) for f in ("x", "eps", "noise"))
    variants = {
        "out_seed": buffers(name, T, torch.float32),
        "out_f64buf": {k: v.float() for k, v in buffers(name, T, torch.float64).items()},
    }
    for t_index in ts:
        t = torch.full((B,), t_index, dtype=torch.long)
        for out, bufs in variants.items():
            y = seed_p_sample(bufs, eps, noise, x, t, t_index)
            write(os.path.join(d, f"{out}_{t_index}.f32"), y.permute(0, 2, 3, 1).contiguous().numpy())


def main(argv):
    if len(argv) >= 3 and argv[1] == "schedules":
        cmd_schedules(argv[2], [int(v) for v in argv[3:]])
    elif len(argv) == 3 and argv[1] == "p_sample":
        cmd_p_sample(argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

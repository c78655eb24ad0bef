"""diffusers' DDPMScheduler as the reference for our x0-form DDPM sampler (tests/test_ddpm_sampler.cpp).

usage: ddpm_diffusers.py IN.safetensors OUT.safetensors
IN: x, eps, noise [S, ...] F32 (our x, the model output and the step's noise at each step);
    __metadata__ "config": {"T", "steps", "variance_type", "clip", "alphas_cumprod"} (ours, in double), and
    optionally "custom_timesteps" (set_timesteps(timesteps=...)), "thresholding", "thresholding_ratio",
    "sample_max_value".
OUT: timesteps [S] I64 (set_timesteps'), prev [S, ...] F64 and x0 [S, ...] F64, each step's prev_sample and
     pred_original_sample from OUR x, eps and noise, in float64.
Exit 77 when diffusers is not installed (scripts/install_py_refs.sh puts it into .pydeps/).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import safetensors_io  # noqa: E402

import diffusers_ref  # noqa: E402,F401  (exits 77 without diffusers)
from diffusers import DDPMScheduler  # noqa: E402
import diffusers.schedulers.scheduling_ddpm as ddpm_module  # noqa: E402


def main():
    inp, meta = safetensors_io.load(sys.argv[1])
    cfg = json.loads(meta["config"])
    s = DDPMScheduler(num_train_timesteps=cfg["T"], variance_type=cfg["variance_type"], clip_sample=cfg["clip"],
                      prediction_type="epsilon", timestep_spacing="leading",
                      thresholding=cfg.get("thresholding", False),
                      dynamic_thresholding_ratio=cfg.get("thresholding_ratio", 0.995),
                      sample_max_value=cfg.get("sample_max_value", 1.0))
    s.alphas_cumprod = torch.tensor(cfg["alphas_cumprod"], dtype=torch.float64)
    s.one = torch.tensor(1.0, dtype=torch.float64)
    if cfg.get("custom_timesteps"):
        s.set_timesteps(timesteps=cfg["custom_timesteps"])
    else:
        s.set_timesteps(cfg["steps"])
    xs = torch.from_numpy(inp["x"].astype(np.float64))
    eps = torch.from_numpy(inp["eps"].astype(np.float64))
    noise = torch.from_numpy(inp["noise"].astype(np.float64))
    prev, x0 = [], []
    for i, t in enumerate(s.timesteps.tolist()):
        # DDPMScheduler.step draws its own noise: hand it this step's (ours).
        ddpm_module.randn_tensor = lambda *a, _n=noise[i], **k: _n
        out = s.step(eps[i], t, xs[i])
        prev.append(out.prev_sample)
        x0.append(out.pred_original_sample)
    safetensors_io.save(sys.argv[2], {"timesteps": s.timesteps.numpy().astype(np.int64),
                                      "prev": torch.stack(prev).numpy(), "x0": torch.stack(x0).numpy()})


if __name__ == "__main__":
    main()

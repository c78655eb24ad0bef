"""diffusers' DDIMScheduler as the reference for our DDIM sampler (tests/test_ddim.cpp).

usage: ddim_diffusers.py IN.safetensors OUT.safetensors
IN: x [S, ...] F32 (our x at each step),
    eps [S, ...] F32 (the model output at each step: eps, x0 or v as
    "prediction_type" says), noise [S, ...] F32 (the variance noise of each step),
    and __metadata__ "config": {"steps", "eta", "spacing", "clip", "set_alpha_to_one", "T", "alphas_cumprod"}
    (ours, in full double precision, so both sides share one schedule).
OUT: timesteps [S] I64 (DDIMScheduler.set_timesteps'), prev [S, ...] F64 and x0 [S, ...] F64 (each step's
    prev_sample and pred_original_sample from OUR x and eps, computed in float64).
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
from diffusers import DDIMScheduler  # noqa: E402


def main():
    inp, meta = safetensors_io.load(sys.argv[1])
    cfg = json.loads(meta["config"])
    s = DDIMScheduler(num_train_timesteps=cfg["T"], timestep_spacing=cfg["spacing"], clip_sample=cfg["clip"],
                      set_alpha_to_one=cfg["set_alpha_to_one"],
                      prediction_type=cfg.get("prediction_type", "epsilon"),
                      thresholding=cfg.get("thresholding", False),
                      dynamic_thresholding_ratio=cfg.get("thresholding_ratio", 0.995),
                      sample_max_value=cfg.get("sample_max_value", 1.0))
    s.set_timesteps(cfg["steps"])
    # One schedule on both sides, in float64: the comparison is of the step, not of float32 cumprods.
    s.alphas_cumprod = torch.tensor(cfg["alphas_cumprod"], dtype=torch.float64)
    s.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64) if cfg["set_alpha_to_one"] else s.alphas_cumprod[0]
    xs = torch.from_numpy(inp["x"].astype(np.float64))
    eps = torch.from_numpy(inp["eps"].astype(np.float64))
    noise = torch.from_numpy(inp["noise"].astype(np.float64))
    prev, x0 = [], []
    for i, t in enumerate(s.timesteps.tolist()):
        kw = {"variance_noise": noise[i]} if cfg["eta"] > 0 else {}
        out = s.step(eps[i], t, xs[i], eta=cfg["eta"], use_clipped_model_output=cfg.get("use_clipped_model_output", False),
                     **kw)
        prev.append(out.prev_sample)
        x0.append(out.pred_original_sample)
    safetensors_io.save(sys.argv[2], {"timesteps": s.timesteps.numpy().astype(np.int64),
                                      "prev": torch.stack(prev).numpy(), "x0": torch.stack(x0).numpy()})


if __name__ == "__main__":
    main()

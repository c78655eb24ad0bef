"""diffusers' DPMSolverMultistepScheduler as the reference for our DPM-Solver++ (tests/test_dpm_solver.cpp).

usage: dpm_diffusers.py IN.safetensors OUT.safetensors
IN: x [S, ...] F32 (our x before each step), eps [S, ...] F32 (the model output at each step);
    __metadata__ "config": {"T", "steps", "order", "spacing", "lower_order_final", "alphas_cumprod"}
    (ours, in full double precision, so both sides share one schedule), and optionally "karras",
    "thresholding", "thresholding_ratio", "sample_max_value", "zero_snr", "prediction_type".
OUT: timesteps [S] I64 (set_timesteps'), prev [S, ...] F32: each step's prev_sample from OUR x and eps
     (the scheduler's history holds the data predictions of our earlier x and eps).
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
from diffusers import DPMSolverMultistepScheduler  # noqa: E402


def main():
    inp, meta = safetensors_io.load(sys.argv[1])
    cfg = json.loads(meta["config"])
    s = DPMSolverMultistepScheduler(num_train_timesteps=cfg["T"], solver_order=cfg["order"],
                                    algorithm_type="dpmsolver++", solver_type="midpoint",
                                    lower_order_final=cfg["lower_order_final"], timestep_spacing=cfg["spacing"],
                                    prediction_type=cfg.get("prediction_type", "epsilon"),
                                    use_karras_sigmas=cfg.get("karras", False),
                                    thresholding=cfg.get("thresholding", False),
                                    dynamic_thresholding_ratio=cfg.get("thresholding_ratio", 0.995),
                                    sample_max_value=cfg.get("sample_max_value", 1.0))
    s.alphas_cumprod = torch.tensor(cfg["alphas_cumprod"], dtype=torch.float64)
    if cfg.get("zero_snr"):
        s.alphas_cumprod[-1] = 2**-24  # what __init__ does with rescale_betas_zero_snr
    s.set_timesteps(cfg["steps"])
    xs = torch.from_numpy(inp["x"].astype(np.float32))
    eps = torch.from_numpy(inp["eps"].astype(np.float32))
    prev = []
    for i, t in enumerate(s.timesteps.tolist()):
        prev.append(s.step(eps[i], t, xs[i]).prev_sample)
    safetensors_io.save(sys.argv[2], {"timesteps": s.timesteps.numpy().astype(np.int64),
                                      "prev": torch.stack(prev).numpy()})


if __name__ == "__main__":
    main()

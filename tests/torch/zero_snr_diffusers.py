"""diffusers' rescale_zero_terminal_snr as the reference for ours (tests/test_schedule.cpp).

usage: zero_snr_diffusers.py BETAS.json OUT.json
BETAS.json: a JSON list of T betas (float64); OUT.json gets the rescaled betas, computed in float64.
Exit 77 when diffusers is not installed (scripts/install_py_refs.sh puts it into .pydeps/).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402

import diffusers_ref  # noqa: E402,F401  (exits 77 without diffusers)
from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr  # noqa: E402


def main():
    with open(sys.argv[1]) as f:
        betas = torch.tensor(json.load(f), dtype=torch.float64)
    out = rescale_zero_terminal_snr(betas)
    with open(sys.argv[2], "w") as f:
        json.dump([float(v) for v in out.tolist()], f)


if __name__ == "__main__":
    main()

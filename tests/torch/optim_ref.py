"""References for the trainer's optimiser settings (tests/test_optim_schedule.cpp).

usage: optim_ref.py lr SCHEDULE WARMUP TOTAL OUT.json
         diffusers' get_scheduler(SCHEDULE) multipliers for steps 0..TOTAL-1 (base lr 1.0), as JSON.
         Exit 77 when diffusers is not installed (scripts/install_py_refs.sh puts it into .pydeps/).
       optim_ref.py adamw IN.safetensors OUT.safetensors
         torch.optim.AdamW from p with the gradients g0, g1, ... in turn; writes p after each step (p0, p1, ...).
         __metadata__ "config": {"lr", "weight_decay", "betas", "eps"}.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402

import safetensors_io  # noqa: E402


def lr(schedule, warmup, total, out_path):
    import diffusers_ref  # noqa: F401  (exits 77 without diffusers)
    from diffusers.optimization import get_scheduler
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    name = {"constant": "constant_with_warmup"}.get(schedule, schedule)
    sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    json.dump(out, open(out_path, "w"))


def adamw(in_path, out_path):
    t, meta = safetensors_io.load(in_path)
    cfg = json.loads(meta["config"])
    p = torch.nn.Parameter(torch.from_numpy(t["p"].copy()))
    opt = torch.optim.AdamW([p], lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                            weight_decay=cfg["weight_decay"], foreach=False)
    out = {}
    i = 0
    while f"g{i}" in t:
        p.grad = torch.from_numpy(t[f"g{i}"].copy())
        opt.step()
        out[f"p{i}"] = p.detach().clone()
        i += 1
    safetensors_io.save(out_path, out)


if __name__ == "__main__":
    if sys.argv[1] == "lr":
        lr(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        adamw(sys.argv[2], sys.argv[3])

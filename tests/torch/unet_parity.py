"""PyTorch side of the U-Net parity test (tests/test_unet_parity.cpp).

usage: unet_parity.py WEIGHTS.safetensors INPUTS.safetensors OUT.safetensors
WEIGHTS: the seed module's state_dict (OIHW convs) and __metadata__["config"] (JSON).
INPUTS: x [B,C,H,W] F32, t [B] I64, g [B,C_out,H,W] F32 (the loss is sum(model_output * g)),
        optionally x_self_cond [B,C,H,W].
OUT: model_output, grad_x, grad_x_self_cond (when given) and grad.<name> for every parameter,
     computed in float32, and each again under "f64." computed in float64 from the same float32
     weights, inputs and time embedding: the exact values both float32 engines approximate.
"""
import copy
import json
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import unet_ref  # noqa: E402


def main():
    weights_path, inputs_path, out_path = sys.argv[1:4]
    torch.set_num_threads(2)
    unet_ref.EXACT_TIME_EMBEDDING = True
    weights, meta = safetensors_io.load(weights_path)
    config = json.loads(meta["config"])
    model = unet_ref.unet_from_config(config)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)

    inputs, _ = safetensors_io.load(inputs_path)
    x = torch.from_numpy(inputs["x"]).requires_grad_(True)
    t = torch.from_numpy(inputs["t"]).long()
    g = torch.from_numpy(inputs["g"])
    sc = None
    if "x_self_cond" in inputs:
        sc = torch.from_numpy(inputs["x_self_cond"]).requires_grad_(True)
    result = run(model, x, t, g, sc, "")

    # The embedding stays the float32 values the engine computes; only what follows it is float64.
    model64 = copy.deepcopy(model).double()
    model64.zero_grad(set_to_none=True)  # the copy carries the float32 run's gradients
    model64.time_mlp[0] = nn.Sequential(model64.time_mlp[0], ToDouble())
    x64 = x.detach().double().requires_grad_(True)
    sc64 = sc.detach().double().requires_grad_(True) if sc is not None else None
    result.update(run(model64, x64, t, g.double(), sc64, "f64."))
    safetensors_io.save(out_path, result, {})


class ToDouble(nn.Module):
    def forward(self, x):
        return x.double()


def run(model, x, t, g, sc, prefix):
    out = model(x, t, sc)
    (out * g).sum().backward()
    result = {"model_output": out.detach(), "grad_x": x.grad}
    if sc is not None:
        result["grad_x_self_cond"] = sc.grad
    for name, p in model.named_parameters():
        result["grad." + name] = p.grad if p.grad is not None else torch.zeros_like(p)
    return {prefix + k: v for k, v in result.items()}


if __name__ == "__main__":
    main()

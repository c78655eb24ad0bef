#!/usr/bin/env python3
"""Converts pytorch-fid's Inception-v3 weights to the safetensors file `ddpm_tool fid` reads.

usage: scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception-fid.safetensors [--allow-other]

The input is pytorch-fid's own file (mseitzer/pytorch-fid, release "fid_weights"; it cannot be downloaded
from this project's machines): TensorFlow's 2015-12-05 Inception graph ported to PyTorch, the network every
published FID is computed with. Its SHA-256 starts with 6726825d (the suffix of its name); a file that does
not is refused unless --allow-other is given (the tests convert random weights that way), and the output
then says so in its metadata, so `ddpm_tool fid` can warn that its scores are not comparable.

Tensors keep pytorch-fid's state_dict names and layouts (OIHW convolutions, batch-norm parameters and
running statistics); the engine folds each batch norm into its convolution when it loads the file.
Needs PyTorch (any version that reads the file); Debian's python3-torch does.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
import safetensors_io  # noqa: E402

OFFICIAL_SHA256_PREFIX = "6726825d"
BASIC_CONVS = 94  # BasicConv2d modules in torchvision's Inception3 without the auxiliary classifier


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    if len(args) != 2 or any(f != "--allow-other" for f in flags):
        sys.stderr.write(__doc__)
        return 2
    src, dst = args
    import torch

    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    official = digest.startswith(OFFICIAL_SHA256_PREFIX)
    if not official and "--allow-other" not in flags:
        sys.stderr.write(f"convert_inception: {src}: SHA-256 {digest} does not start with {OFFICIAL_SHA256_PREFIX}: "
                         "not pytorch-fid's pt_inception-2015-12-05-6726825d.pth, so its FIDs would not be comparable "
                         "with published ones (pass --allow-other to convert it anyway)\n")
        return 1
    state = torch.load(src, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        sys.stderr.write(f"convert_inception: {src}: expected a state_dict, found {type(state).__name__}\n")
        return 1
    out = {}
    for name, t in state.items():
        if name.endswith("num_batches_tracked"):
            continue  # a training counter, unused in inference
        if name.startswith("AuxLogits."):
            continue  # torchvision's auxiliary classifier: not part of pytorch-fid's network
        if not torch.is_tensor(t) or not t.is_floating_point():
            sys.stderr.write(f"convert_inception: {src}: {name} is not a floating-point tensor\n")
            return 1
        out[name] = t.detach().to(torch.float32).contiguous().numpy()
    convs = [n for n in out if n.endswith(".conv.weight")]
    missing = [n for n in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var") if n not in out]
    if len(convs) != BASIC_CONVS or missing:
        sys.stderr.write(f"convert_inception: {src}: not an Inception-v3 state_dict ({len(convs)} BasicConv2d "
                         f"weights, expected {BASIC_CONVS}; missing {missing})\n")
        return 1
    meta = {
        "dd_model": "pytorch_fid_inception_v3",
        "dd_inception_official": "true" if official else "false",
        "source_sha256": digest,
        "source_file": os.path.basename(src),
    }
    tmp = dst + ".tmp"
    safetensors_io.save(tmp, out, meta)
    os.replace(tmp, dst)
    print(f"convert_inception: wrote {dst} ({len(out)} tensors; {'pytorch-fid official weights' if official else 'NOT the official weights'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""pytorch-fid (PyPI, pinned in scripts/install_py_refs.sh) as the reference for our Inception-v3 and FID
(tests/test_inception.cpp).

usage:
  inception_fid.py weights OUT.pth SEED
      a random state_dict in the layout of pytorch-fid's pt_inception-2015-12-05-6726825d.pth (torchvision's
      Inception3 with 1008 classes and no auxiliary classifier), scaled so activations stay O(1) through
      the 94 convolutions, with non-trivial batch-norm statistics so the folding is exercised
  inception_fid.py features W.pth IMAGES.safetensors OUT.safetensors
      IMAGES: "images" F32 [B, H, W, C] in [0, 1] (C = 1 is replicated to 3, as PIL's convert('RGB'));
      OUT: "features" F32 [B, 2048], pytorch-fid's InceptionV3([3]) in eval mode
  inception_fid.py fid W.pth DIR1 DIR2
      prints "fid <value>": pytorch-fid's calculate_fid_given_paths on two folders of PNG files (batch 50,
      CPU), exactly its command-line pipeline, with W.pth in place of the download
Exit 77 when pytorch-fid or torchvision is missing (the C++ side reports the test skipped).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", ".pydeps"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import safetensors_io  # noqa: E402

try:
    import torchvision  # noqa: F401
    import pytorch_fid.inception as pfi
    from pytorch_fid import fid_score
except Exception as e:  # noqa: BLE001
    print(f"pytorch-fid is not available ({e}); run scripts/install_deps.sh and scripts/install_py_refs.sh")
    sys.exit(77)


def random_state_dict(seed):
    torch.manual_seed(seed)
    net = torchvision.models.inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    sd = net.state_dict()
    out = {}
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            out[name] = t
        elif name.endswith("conv.weight"):
            fan_in = t.shape[1] * t.shape[2] * t.shape[3]
            out[name] = torch.randn_like(t) * (2.0 / fan_in) ** 0.5
        elif name.endswith("bn.weight"):
            out[name] = torch.empty_like(t).uniform_(0.5, 1.5)
        elif name.endswith("bn.bias") or name.endswith("running_mean"):
            out[name] = torch.empty_like(t).uniform_(-0.2, 0.2)
        elif name.endswith("running_var"):
            out[name] = torch.empty_like(t).uniform_(0.5, 2.0)
        else:  # fc
            out[name] = torch.randn_like(t) * 0.02
    return out


def fid_model(weights_path):
    state = torch.load(weights_path, map_location="cpu")
    pfi.load_state_dict_from_url = lambda *a, **k: state  # pytorch-fid's download, replaced by our file
    model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model.eval()


def main():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    mode = sys.argv[1]
    if mode == "weights":
        torch.save(random_state_dict(int(sys.argv[3])), sys.argv[2])
    elif mode == "features":
        model = fid_model(sys.argv[2])
        tensors, _ = safetensors_io.load(sys.argv[3])
        x = torch.from_numpy(np.ascontiguousarray(tensors["images"])).permute(0, 3, 1, 2).contiguous()
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        with torch.no_grad():
            f = model(x)[0].squeeze(3).squeeze(2)
        safetensors_io.save(sys.argv[4], {"features": f.numpy().astype(np.float32)})
    elif mode == "fid":
        fid_model(sys.argv[2])  # installs the replaced download
        value = fid_score.calculate_fid_given_paths([sys.argv[3], sys.argv[4]], 50, "cpu", 2048, num_workers=0)
        print(f"fid {value!r}")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

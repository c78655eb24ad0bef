"""torch's bilinear resize for tests/test_resize.cpp.

usage: resize_ref.py IN.safetensors OUT.safetensors
    IN holds NHWC float32 images x0, x1, ... and __metadata__ "sizes": [[out_h, out_w], ...].
    Each is resized as pytorch-fid resizes its batches (a contiguous NCHW tensor,
    F.interpolate(size=(out_h, out_w), mode="bilinear", align_corners=False)) and written back
    NHWC as y0, y1, ...
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import safetensors_io  # noqa: E402


def main(in_path, out_path):
    t, meta = safetensors_io.load(in_path)
    sizes = json.loads(meta["sizes"])
    out = {}
    for i, (oh, ow) in enumerate(sizes):
        x = torch.from_numpy(t[f"x{i}"].copy()).permute(0, 3, 1, 2).contiguous()
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
        out[f"y{i}"] = y.permute(0, 2, 3, 1).contiguous()
    safetensors_io.save(out_path, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

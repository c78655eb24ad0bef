"""Every engine dtype through safetensors, PyTorch on this side (tests/test_safetensors_dtypes.cpp).

    safetensors_dtypes.py write OUT.safetensors BITS.json SEED
        PyTorch makes float32 values (random, of every magnitude, and the special values), casts them
        to bfloat16, float16, int32 and int64 with torch's own .to(), and saves all of them; BITS.json
        holds each tensor's raw bits as PyTorch holds them in memory, for the C++ side to compare.
    safetensors_dtypes.py check IN.safetensors BITS.json
        Loads the engine's file as torch tensors and checks each one's dtype, shape and bits against
        BITS.json (written by the engine), and that the engine's bf16/f16/int casts of "src" equal
        torch's (NaN as NaN: torch writes one canonical NaN, the engine keeps sign and payload).
"""
import json
import sys

import torch

import safetensors_io as st

_INT_VIEW = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16,
             torch.int32: torch.int32, torch.int64: torch.int64}
_TORCH_OF = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I32": torch.int32,
             "I64": torch.int64}
_NAME_OF = {v: k for k, v in _TORCH_OF.items()}
_WIDTH = {torch.float32: 32, torch.bfloat16: 16, torch.float16: 16, torch.int32: 32, torch.int64: 64}


def bits_of(t):
    """The elements' raw bits as unsigned Python ints."""
    w = _WIDTH[t.dtype]
    return [b & ((1 << w) - 1) for b in t.contiguous().view(_INT_VIEW[t.dtype]).reshape(-1).tolist()]


def source_values(seed):
    g = torch.Generator().manual_seed(seed)
    scale = torch.pow(10.0, torch.empty(3000).uniform_(-9, 6, generator=g))
    rnd = torch.randn(3000, generator=g) * scale
    bits = torch.randint(-2**31, 2**31 - 1, (2000,), dtype=torch.int64, generator=g).to(torch.int32)
    special = torch.tensor([0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f7fffff, 0x3f808000,
                            0x3f818000, 0x477ff000, 0x477fefff, 0x33000000, 0x33c00000, 0x00000001, 0x807fffff],
                           dtype=torch.int64).to(torch.int32)
    return torch.cat([special.view(torch.float32), rnd, bits.view(torch.float32)])


def write(out, bits_json, seed):
    src = source_values(seed)
    g = torch.Generator().manual_seed(seed + 1)
    trunc_src = torch.empty(500).uniform_(-3e6, 3e6, generator=g)
    tensors = {
        "src": src,
        "bf16": src.to(torch.bfloat16),
        "f16": src.to(torch.float16).reshape(2, -1),
        "trunc_src": trunc_src,
        "trunc_i32": trunc_src.to(torch.int32),
        "trunc_i64": trunc_src.to(torch.int64).reshape(5, 10, 10),
        "i32": torch.randint(-2**31, 2**31 - 1, (7, 3), dtype=torch.int64, generator=g).to(torch.int32),
        "i64": torch.cat([torch.tensor([-2**63, 2**63 - 1, 0, -1]),
                          torch.randint(-2**62, 2**62, (96,), dtype=torch.int64, generator=g)]),
        "bf16_scalar": torch.tensor(-1.5, dtype=torch.bfloat16),
        "f16_empty": torch.zeros(0, 3, dtype=torch.float16),
    }
    st.save(out, tensors, {"writer": "torch " + torch.__version__})
    with open(bits_json, "w") as f:
        json.dump({n: {"dtype": _NAME_OF[t.dtype], "shape": list(t.shape), "bits": bits_of(t)}
                   for n, t in tensors.items()}, f)


def same_float(a, b):
    """Bitwise equal, except that any NaN equals any NaN."""
    both_nan = torch.isnan(a.float()) & torch.isnan(b.float())
    diff = (a.view(_INT_VIEW[a.dtype]) != b.view(_INT_VIEW[b.dtype])) & ~both_nan
    return int(diff.sum()) == 0, diff.nonzero().reshape(-1)[:5].tolist()


def check(path, bits_json):
    t, meta = st.load_torch(path)
    with open(bits_json) as f:
        want = json.load(f)
    assert sorted(t) == sorted(want), (sorted(t), sorted(want))
    for name, w in want.items():
        x = t[name]
        assert x.dtype == _TORCH_OF[w["dtype"]], (name, x.dtype, w["dtype"])
        assert list(x.shape) == w["shape"], (name, list(x.shape), w["shape"])
        got = bits_of(x)
        bad = [i for i, (a, b) in enumerate(zip(got, w["bits"])) if a != b]
        assert len(got) == len(w["bits"]) and not bad, (name, bad[:5])
    src = t["src"]
    for name, dt in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        ok, where = same_float(t[name].reshape(-1), src.to(dt))
        assert ok, (name, "differs from torch's cast at", where, src[where].tolist())
    finite = t["trunc_src"]
    assert torch.equal(t["trunc_i32"], finite.to(torch.int32)), "int32 truncation differs from torch"
    assert torch.equal(t["trunc_i64"].reshape(-1), finite.to(torch.int64)), "int64 truncation differs from torch"
    print("torch read ok:", len(t), "tensors")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")

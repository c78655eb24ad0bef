#!/usr/bin/env python3
"""The PyTorch peer of bench_train_step: the seed U-Net (tests/torch/unet_ref.py, the module our
parity tests check against) trained and sampled the way our trainer does it, and the table that
puts both side by side.

  torch_peer.py train  --device cpu|cuda --preset cifar|fmnist --mode MODE
                       [--batch N] [--steps N] [--warmup N] [--json FILE]
  torch_peer.py sample --device cpu|cuda [--mode MODE] [--images 256]
                       [--timesteps 1000] [--json FILE]
  torch_peer.py table  --json FILE        # markdown tables from ours + the peer's JSON lines

One (preset, mode) per process, so peak memory (CUDA: max_memory_allocated; CPU: peak RSS) is
that run's own. The step is ours: a host batch copied to the device, t ~ U{0..999}, q_sample,
huber loss on the noise, backward, clip_grad_norm_(1.0), Adam(lr 1e-3), zero_grad, and the EMA
(0.995 every 10 steps, a plain copy up to step 100); the losses are read back once per timed run and
checked, as our trainer reads them in batches (neither side waits for the GPU inside a step).
Modes (MODE):
  default      PyTorch as a user gets it: no flag touched (on CUDA: cuDNN convolutions in TF32,
               matmuls in fp32, cudnn.benchmark off);
  fp32         strict fp32: TF32 off everywhere (like-for-like with our fp32 engine);
  tf32         TF32 on for matmuls and cuDNN convs;
  bf16         autocast to bfloat16 (TF32 off for what stays fp32);
  compile      torch.compile of the model, strict fp32;
  compile-bf16 torch.compile and bf16 autocast: PyTorch's best mode, the user's real alternative.
  compile-max-bf16  the same with torch.compile(mode="max-autotune") (minutes of autotuning first).
Every mode but default sets cudnn.benchmark. Where a mode does not exist in the installed torch
(CPU: TF32; torch 1.13: torch.compile; no C++ compiler or Python.h for inductor on the CPU) or fails
in it, a row says so instead of a number. Rows are labelled with torch's version and where it came
from (Debian's python3-torch, or PyPI's wheel: on the CPU, the .torch-venv of scripts/make_torch_venv.sh).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "torch"))
from unet_ref import Unet  # noqa: E402

PRESETS = {
    "cifar": dict(dim=64, dim_mults=(1, 2, 4, 8), channels=3, image=32, batch=128),
    "fmnist": dict(dim=32, dim_mults=(1, 2, 4), channels=1, image=28, batch=64),
}
T = 1000


def linear_betas(steps):
    scale = 1000 / steps  # the seed's linear schedule: 1e-4 .. 0.02 at T = 1000
    return torch.linspace(scale * 1e-4, scale * 0.02, steps, dtype=torch.float64).float()


class Buffers:
    def __init__(self, steps, device):
        betas = linear_betas(steps)
        alphas = 1.0 - betas
        ac = torch.cumprod(alphas, 0)
        ac_prev = F.pad(ac[:-1], (1, 0), value=1.0)
        self.betas = betas.to(device)
        self.sqrt_ac = ac.sqrt().to(device)
        self.sqrt_1m_ac = (1.0 - ac).sqrt().to(device)
        self.sqrt_recip_alphas = (1.0 / alphas).sqrt().to(device)
        self.posterior_sd = (betas * (1.0 - ac_prev) / (1.0 - ac)).sqrt().to(device)


MODES = ["default", "fp32", "tf32", "bf16", "compile", "compile-bf16", "compile-max-bf16"]
CLASSES = {"default": "PyTorch defaults", "fp32": "fp32", "tf32": "TF32", "bf16": "bf16 autocast",
           "compile": "fp32 + torch.compile", "compile-bf16": "bf16 autocast + torch.compile",
           "compile-max-bf16": "bf16 autocast + torch.compile max-autotune"}
# What each row is, beside ours.
ROLES = {"default": "as a user gets it", "fp32": "like-for-like", "compile-bf16": "the user's best alternative"}
# Which of our --precision rows each mode is compared with: the same rounding of the matmul operands
# (PyTorch's defaults run cuDNN's convolutions in TF32).
OURS_FOR_MODE = {"default": "tf32", "fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "compile": "fp32",
                 "compile-bf16": "bf16", "compile-max-bf16": "bf16"}


def unavailable(mode, device):
    if mode.startswith("compile") and not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if mode.startswith("compile") and device == "cpu":
        # Inductor writes C++ for the CPU (triton is for GPUs only) and builds it with the host's C++
        # compiler against Python.h.
        cxx = [c for c in (os.environ.get("CXX"), "g++", "c++", "clang++") if c and shutil.which(c)]
        if not cxx:
            return "torch.compile on the CPU (inductor) needs a C++ compiler: no g++, c++ or clang++ (nor $CXX)"
        include = sysconfig.get_paths().get("include") or ""
        if not os.path.exists(os.path.join(include, "Python.h")):
            return f"torch.compile on the CPU (inductor) needs Python.h: none in {include or 'Python'} (install python3-dev)"
    if mode == "tf32" and device == "cpu":
        return "no TF32 on the CPU"
    if mode.endswith("bf16") and device == "cpu" and not hasattr(torch, "autocast"):
        return f"torch {torch.__version__} has no CPU autocast"
    return None


def setup(args):
    if torch.cuda.is_available() and args.mode != "default":
        tf32 = args.mode == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)


def flags():
    if not torch.cuda.is_available():
        return None
    b = torch.backends
    return dict(matmul_tf32=b.cuda.matmul.allow_tf32, cudnn_tf32=b.cudnn.allow_tf32, cudnn_benchmark=b.cudnn.benchmark)


def autocast(args):
    if args.mode.endswith("bf16"):
        return torch.autocast(device_type=args.device, dtype=torch.bfloat16)
    return torch.autocast(device_type=args.device, enabled=False)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_mib(device):
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(args, preset):
    p = PRESETS[preset]
    model = Unet(dim=p["dim"], dim_mults=p["dim_mults"], channels=p["channels"]).to(args.device)
    if args.mode.startswith("compile"):
        fn = torch.compile(model, mode="max-autotune") if "-max" in args.mode else torch.compile(model)
    else:
        fn = model
    return p, model, fn


def torch_source():
    """Where this torch comes from, for the table's label: Debian's python3-torch, or a wheel that pip
    installed (PyPI's have no local version in their metadata; download.pytorch.org's are "+cpu", "+cu128" ...)."""
    path = os.path.realpath(torch.__file__)
    if path.startswith("/usr/lib/python3/"):
        return "Debian"
    try:
        from importlib import metadata
        dist = metadata.distribution("torch")
        installer, version = (dist.read_text("INSTALLER") or "").strip(), dist.version
    except Exception:  # noqa: BLE001 -- no metadata: say nothing
        return None
    if installer == "pip":  # PyPI's wheel is "2.15.0" (its torch.__version__ says "2.15.0+cu132")
        return "PyPI" if "+" not in version else "pip, " + version.split("+", 1)[1]
    return None


def failure(e):
    """A one-line reason from an exception of the warm-up (a torch.compile failure carries the backend's
    exception after "raised:" and then lines of advice)."""
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()] or [type(e).__name__]
    if type(e).__module__.startswith("torch._"):
        after = [i for i, l in enumerate(lines) if l.endswith("raised:")]
        msg = lines[after[0] + 1] if after and after[0] + 1 < len(lines) else lines[0]
    else:
        msg = lines[-1]
    return f"fails in torch {torch.__version__}: {msg[:160]}"


def emit(args, row):
    row.update(device=args.device, mode=args.mode, torch=torch.__version__, torch_source=torch_source(),
               threads=torch.get_num_threads() if args.device == "cpu" else None,
               flags=flags() if args.device == "cuda" else None)
    line = json.dumps(row)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")


def check_finite(losses):
    values = torch.stack(losses).float().cpu().tolist()
    bad = [i for i, v in enumerate(values) if v != v or v in (float("inf"), float("-inf"))]
    if bad:
        raise SystemExit(f"torch_peer: the loss is not finite at step {bad[0] + 1} of {len(values)}")
    return values[-1]


def cmd_train(args):
    why = unavailable(args.mode, args.device)
    if why:
        return emit(args, dict(kind="train", preset=args.preset, unavailable=why))
    setup(args)
    p, model, fn = build(args, args.preset)
    bufs = Buffers(T, args.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())
    shadow = [q.detach().clone() for q in params]
    B, S, C = args.batch or p["batch"], p["image"], p["channels"]
    host = [torch.randn(B, C, S, S) * 0.5 for _ in range(4)]
    step = [0]

    def train_step():
        x0 = host[step[0] % len(host)].to(args.device)
        t = torch.randint(0, T, (B,), device=args.device)
        noise = torch.randn_like(x0)
        x_t = bufs.sqrt_ac[t].view(B, 1, 1, 1) * x0 + bufs.sqrt_1m_ac[t].view(B, 1, 1, 1) * noise
        with autocast(args):
            pred = fn(x_t, t)
            loss = F.smooth_l1_loss(noise, pred.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step[0] += 1
        if step[0] % 10 == 0:
            with torch.no_grad():
                for s, q in zip(shadow, params):
                    if step[0] <= 100:
                        s.copy_(q)
                    else:
                        s.lerp_(q, 1 - 0.995)
        return loss.detach()  # read back in batches, as our trainer does (no sync inside a step)

    t_warm = time.perf_counter()
    try:
        warm = [train_step() for _ in range(max(args.warmup, 1))]
        check_finite(warm)
    except Exception as e:  # noqa: BLE001 -- e.g. an op without a bf16 kernel in this torch's CPU autocast,
        # or torch.compile's backend failing to build its kernels
        return emit(args, dict(kind="train", preset=args.preset, unavailable=failure(e)))
    sync(args.device)
    t_held = time.perf_counter()
    if args.hold:  # compiled and warm: wait for the GPU to be ours alone before timing
        while not os.path.exists(args.hold):
            time.sleep(0.05)
    held = time.perf_counter() - t_held
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    timed = [train_step() for _ in range(args.steps)]
    lv = check_finite(timed)  # the one read-back of the timed run
    sync(args.device)
    ms = (time.perf_counter() - t0) * 1e3 / args.steps
    emit(args, dict(kind="train", preset=args.preset, batch=B, ms_step=ms, peak_mib=peak_mib(args.device),
                    steps=args.steps, loss=lv, warmup_s=t_held - t_warm, held_s=held))


def cmd_sample(args):
    why = unavailable(args.mode, args.device)
    if why:
        return emit(args, dict(kind="sample", unavailable=why))
    setup(args)
    p, model, fn = build(args, "cifar")
    model.eval()
    bufs = Buffers(args.timesteps, args.device)
    shape = (args.images, p["channels"], p["image"], p["image"])

    @torch.no_grad()
    def loop(steps):
        x = torch.randn(shape, device=args.device)
        for i in reversed(range(steps)):
            t = torch.full((args.images,), i, device=args.device, dtype=torch.long)
            with autocast(args):
                eps = fn(x, t).float()
            mean = bufs.sqrt_recip_alphas[i] * (x - bufs.betas[i] * eps / bufs.sqrt_1m_ac[i])
            x = mean if i == 0 else mean + bufs.posterior_sd[i] * torch.randn_like(x)
        return x

    try:
        loop(2)  # warm-up (and compilation)
    except Exception as e:  # noqa: BLE001 -- as in cmd_train
        return emit(args, dict(kind="sample", unavailable=failure(e)))
    sync(args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    loop(args.timesteps)
    sync(args.device)
    emit(args, dict(kind="sample", images=args.images, timesteps=args.timesteps, seconds=time.perf_counter() - t0,
                    peak_mib=peak_mib(args.device)))


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def device_line(device):
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = "CPU"
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores; load average {' '.join(open('/proc/loadavg').read().split()[:3])}"


def cmd_table(args):
    rows = [json.loads(l) for l in open(args.json) if l.strip()]
    commit = os.environ.get("DD_COMMIT") or subprocess.run(
        ["git", "-C", HERE, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip() or "unknown"
    device = rows[0].get("device", "cpu") if rows else "cpu"
    print(f"- device: {device_line(device)}\n- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
          f"- commit: {commit}\n- command: `{args.command}`")
    # Ours come in a row per precision and mode (eager and, on the GPU, replayed from a CUDA graph):
    # each is shown; a PyTorch row is compared with our fastest row of the matching precision
    # (OURS_FOR_MODE), or with our fastest row overall when that precision was not measured. Our
    # autotuned rows (--conv-autotune, as cudnn.benchmark) are not paired with PyTorch's defaults,
    # the one mode that leaves cudnn.benchmark off.
    ours_rows = {}
    for r in rows:
        if "mode" not in r:
            ours_rows.setdefault((r.get("preset"), r["kind"]), []).append(r)
    speed = lambda r: r.get("ms_step", r.get("seconds", 0))  # noqa: E731

    def ours_for(key, mode=None):
        v = ours_rows.get(key, [])
        if mode == "default":
            v = [r for r in v if not r.get("conv_autotune")]
        same = [r for r in v if r.get("precision", "fp32") == OURS_FOR_MODE.get(mode)]
        return min(same or v, key=speed) if v else None

    def ours_label(r):
        return ("ours " + r.get("precision", "fp32") + (" conv-autotuned" if r.get("conv_autotune") else "")
                + {True: " (CUDA graph)", False: " (eager)"}.get(r.get("cuda_graphs"), ""))
    peer = [r for r in rows if "mode" in r]
    names = {"cifar": "CIFAR-10 preset (dim 64, 1,2,4,8, 3x32x32)", "fmnist": "Fashion-MNIST preset (dim 32, 1,2,4, 1x28x28)"}

    def label(r):  # e.g. "PyTorch 2.15.0 (PyPI, 2 threads)" beside "PyTorch 1.13.0a0 (Debian, 2 threads)"
        notes = [n for n in (r.get("torch_source"), f"{r['threads']} threads" if r.get("threads") else None) if n]
        # PyPI's version, not the CUDA build's "+cu132" that torch.__version__ adds (the CPU ran it)
        version = r["torch"].split("+")[0] if r.get("torch_source") == "PyPI" and r.get("device") == "cpu" else r["torch"]
        return f"PyTorch {version}" + (f" ({', '.join(notes)})" if notes else "")

    def role(r):
        return ROLES.get(r["mode"], "")

    for preset in ("cifar", "fmnist"):
        mine = ours_for((preset, "train"))
        theirs = [r for r in peer if r["kind"] == "train" and r.get("preset") == preset]
        if not mine and not theirs:
            continue
        print(f"\n**Training step, {names[preset]}**\n")
        print("| trainer | precision | row | batch | ms / step | img/s | peak MiB | our speed-up (PyTorch time / ours) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for o in ours_rows.get((preset, "train"), []):
            print(f"| {ours_label(o)} | {o.get('precision', 'fp32')} | | {o['batch']} | {fmt(o['ms_step'])} "
                  f"| {fmt(o['batch'] * 1e3 / o['ms_step'])} | {fmt(o['peak_mib'], 0)} | |")
        for r in theirs:
            if "unavailable" in r:
                print(f"| {label(r)} | {CLASSES[r['mode']]} | {role(r)} | - | - | - | - | unavailable: {r['unavailable']} |")
                continue
            mine = ours_for((preset, "train"), r["mode"])
            ratio = f"{fmt(r['ms_step'] / mine['ms_step'], 2)}x ({ours_label(mine)})" if mine else "-"
            if mine and mine["ms_step"] > r["ms_step"]:
                ratio += " **ours slower**"
            if r.get("warmup_s", 0) > 20 and r["mode"].startswith("compile"):
                ratio += f" (warm-up incl. compilation {r['warmup_s']:.0f} s, not timed)"
            print(f"| {label(r)} | {CLASSES[r['mode']]} | {role(r)} | {r['batch']} | {fmt(r['ms_step'])} | "
                  f"{fmt(r['batch'] * 1e3 / r['ms_step'])} | {fmt(r['peak_mib'], 0)} | {ratio} |")
    mine = ours_for((None, "sample"), "fp32")
    theirs = [r for r in peer if r["kind"] == "sample"]
    if mine or theirs:
        print("\n**Sampling, CIFAR-10 preset (one batch, Algorithm 2)**\n")
        print("| sampler | precision | row | images x steps | total s | ms / step | 1000 steps at this rate (s) | "
              "peak MiB | ours / PyTorch (time per image-step; ours: vs our fp32 row) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        rate = lambda r: r["seconds"] / (r["images"] * r["timesteps"])  # noqa: E731
        for o in ours_rows.get((None, "sample"), []):
            print(f"| {ours_label(o)} | {o.get('precision', 'fp32')} | | {o['images']} x {o['timesteps']} | {fmt(o['seconds'], 2)} | "
                  f"{fmt(o['seconds'] * 1e3 / o['timesteps'])} | {fmt(o['seconds'] * 1000 / o['timesteps'])} | "
                  f"{fmt(o['peak_mib'], 0)} | {fmt(rate(o) / rate(mine), 2)} |")
        for r in theirs:
            if "unavailable" in r:
                print(f"| {label(r)} | {CLASSES[r['mode']]} | {role(r)} | - | - | - | - | - | unavailable: {r['unavailable']} |")
                continue
            pair = ours_for((None, "sample"), r["mode"])
            ratio = f"{fmt(rate(pair) / rate(r), 2)} ({ours_label(pair)})" if pair else "-"
            if pair and rate(pair) > rate(r):
                ratio += " **ours slower**"
            print(f"| {label(r)} | {CLASSES[r['mode']]} | {role(r)} | {r['images']} x {r['timesteps']} | "
                  f"{fmt(r['seconds'], 2)} | {fmt(r['seconds'] * 1e3 / r['timesteps'])} | "
                  f"{fmt(r['seconds'] * 1000 / r['timesteps'])} | {fmt(r['peak_mib'], 0)} | {ratio} |")
    modes_seen = {r["mode"]: r.get("flags") for r in peer if r.get("flags")}
    if modes_seen:
        print("\nPyTorch's flags per mode (matmul TF32 / cuDNN TF32 / cudnn.benchmark): " + "; ".join(
            f"{CLASSES[m]}: {f['matmul_tf32']}/{f['cudnn_tf32']}/{f['cudnn_benchmark']}" for m, f in modes_seen.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["train", "sample", "table"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="cifar", choices=list(PRESETS))
    ap.add_argument("--mode", default="fp32", choices=MODES)
    ap.add_argument("--batch", type=int, default=0, help="training batch (0: the preset's)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    ap.add_argument("--json", default="")
    ap.add_argument("--hold", default="", help="train: after the warm-up, wait until this file exists before timing")
    ap.add_argument("--command", default="bench/torch_peer.py", help="table: the command named in the header")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count())
    {"train": cmd_train, "sample": cmd_sample, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()

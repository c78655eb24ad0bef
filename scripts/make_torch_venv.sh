#!/usr/bin/env bash
# Makes .torch-venv/ (git-ignored) in the repository: a virtual environment of Debian's
# /usr/bin/python3 with the newest torch from PyPI, for the CPU peer of the benches
# (bench/torch_peer.py, run by bench/run_cpu.sh beside Debian's torch 1.13). Bench tooling only:
# no test runs it.
#
# The CPU is all it is for, so the PyPI wheel (the CUDA build: there is no CPU-only torch on PyPI,
# and download.pytorch.org's CPU wheels are not reachable from this project's machines) goes in with
# --no-deps and only its pure-Python requirements are listed, from the wheel's Requires-Dist:
# filelock, typing-extensions, setuptools, sympy (with mpmath), networkx, jinja2 (with MarkupSafe) and
# fsspec; not cuda-toolkit, cuda-bindings, nvidia-* or triton (several GB, GPU only). The CUDA
# libraries are not loaded lazily, though: libtorch_cpu.so itself links libcudart and libcupti, and
# `import torch` loads libtorch_python.so, which links libtorch_cuda.so and through it cuBLAS, cuDNN,
# cuFFT, cuSPARSE(Lt), cuFile, NCCL, NVRTC and NVSHMEM (DT_NEEDED, resolved at import, as Python
# dlopens extensions RTLD_NOW; no environment variable changes that). Without them the import fails
# ("ImportError: libcufile.so.0: cannot open shared object file"). So each of those libraries that the
# loader cannot find (on a machine with the CUDA toolkit installed, only the few it lacks) is replaced
# by a stub built here with gcc: a library of that SONAME and symbol versions defining every symbol
# torch imports from it, each of which aborts with a message naming it if ever called, except the few
# CUDA runtime calls torch.cuda.is_available() makes (no device). The stubs go into torch/lib, the
# last directory of torch's RPATH, after the nvidia/* folders the real wheels would fill, so a real
# library installed later wins; they are listed in torch/lib/CUDA_STUBS.txt. The CPU paths (eager,
# and torch.compile's inductor, which writes C++ for the CPU and needs g++ and Python.h, not triton)
# never call them.
#
# Environment: TORCH_WHEEL=/path/to/torch-*.whl installs that wheel instead of downloading one
# (its pure-Python requirements still come from PyPI); TORCH_SPEC (default "torch") is what pip asks
# PyPI for otherwise; VENV (default .torch-venv). Idempotent: when the venv's torch imports and
# multiplies on the CPU, nothing is installed (delete the folder, or set REINSTALL=1, to upgrade).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.torch-venv}
TORCH_SPEC=${TORCH_SPEC:-torch}
py=$VENV/bin/python
check='import torch; v = torch.randn(2) @ torch.randn(2); assert v.dim() == 0; print("make_torch_venv: torch", torch.__version__, "works on the CPU (cuda available:", torch.cuda.is_available(), ")")'

if [ -z "${REINSTALL:-}" ] && [ -x "$py" ] && "$py" -c "$check" 2>/dev/null; then
  echo "make_torch_venv: $VENV already has torch; nothing to do (REINSTALL=1 to reinstall)"
  exit 0
fi

[ -x "$py" ] || /usr/bin/python3 -m venv "$VENV"
pip=("$py" -m pip --disable-pip-version-check)
# torch's Requires-Dist less the CUDA ones; mpmath and MarkupSafe are sympy's and jinja2's own.
deps=("filelock" "typing-extensions>=4.13.0" "setuptools>=77.0.3" "sympy>=1.13.3" "mpmath" "networkx>=2.5.1"
  "jinja2" "MarkupSafe" "fsspec>=0.8.5")
"${pip[@]}" install --quiet "${deps[@]}"
if [ -n "${TORCH_WHEEL:-}" ]; then
  [ -f "$TORCH_WHEEL" ] || { echo "make_torch_venv: TORCH_WHEEL=$TORCH_WHEEL: no such file" >&2; exit 1; }
  "${pip[@]}" install --no-deps ${REINSTALL:+--force-reinstall} "$TORCH_WHEEL"
else
  "${pip[@]}" install --no-deps ${REINSTALL:+--force-reinstall} --upgrade "$TORCH_SPEC"
fi
# The requirements pip was told to skip are the CUDA ones only: say if any other is missing.
"${pip[@]}" check 2>&1 | grep -vE "cuda|nvidia|triton" || true
torch_dir=$("$py" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))')
"$py" - "$torch_dir" "$torch_dir/lib" <<'EOF'
"""Stubs for the CUDA libraries torch links and the loader cannot find (see the header above).
argv: TORCH_DIR OUT_DIR [all]; "all" stubs every CUDA library torch links (to test the stubs where
the CUDA toolkit is installed: LD_PRELOAD them)."""
import glob, os, re, subprocess, sys, tempfile

torch_dir, out, every = sys.argv[1], sys.argv[2], sys.argv[3:] == ["all"]
lib = os.path.join(torch_dir, "lib")
files = sorted(set(glob.glob(os.path.join(lib, "*.so*")) + glob.glob(os.path.join(torch_dir, "_C*.so"))))
ours = set()
listing = os.path.join(lib, "CUDA_STUBS.txt")
if os.path.exists(listing):
    ours = {l.strip() for l in open(listing) if l.strip()}
files = [f for f in files if os.path.basename(f) not in ours]
cuda = re.compile(r"^lib(cuda|cudart|cupti|cublas|cublasLt|cudnn|cufft|cufile|curand|cusolver|cusparse|cusparseLt|nccl|"
                  r"nvrtc|nvJitLink|nvshmem_host|nvToolsExt)\.so")


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


needed, resolved, missing = {}, {}, set()
for f in files:
    needed[f] = re.findall(r"\(NEEDED\).*\[(.+)\]", run("readelf", "-d", f))
    for name, where in re.findall(r"^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$", run("ldd", f), re.M):
        # libcuda.so.1 is the driver's, not a library pip would install: a CPU machine lacks it, and
        # its only user, libcaffe2_nvrtc.so, is loaded lazily (for CUDA code torch compiles at run time).
        if where == "not found" and name not in ours and name != "libcuda.so.1":
            missing.add(name)
        elif where != "not found":
            resolved[name] = where
if every:
    missing = {n for v in needed.values() for n in v if cuda.match(n) and n != "libcuda.so.1"}
if not missing:
    sys.exit(0)
defined = set()
for name, path in resolved.items():
    if name in missing or name in ours:
        continue
    for l in run("readelf", "-W", "--dyn-syms", path).splitlines():
        c = l.split()
        if len(c) >= 8 and c[6] != "UND":
            defined.add(c[7].split("@")[0])
stubs = {m: {} for m in missing}  # soname -> {symbol: (version or None, type)}
for f in files:
    vfile = {}  # version name -> the file its verneed names
    cur = None
    for l in run("readelf", "-W", "-V", f).splitlines():
        m = re.search(r"File: (\S+)", l)
        if m:
            cur = m.group(1)
        m = re.search(r"Name: (\S+)\s+Flags", l)
        if m and cur:
            vfile[m.group(1)] = cur
    mine = [n for n in needed[f] if n in missing]
    for l in run("readelf", "-W", "--dyn-syms", f).splitlines():
        c = l.split()
        if len(c) < 8 or c[6] != "UND" or c[4] == "WEAK":
            continue
        name, _, ver = c[7].partition("@")
        if ver and vfile.get(ver) in missing:
            stubs[vfile[ver]][name] = (ver, c[3])
        elif not ver and name not in defined and mine:
            for m in mine:
                stubs[m][name] = (None, c[3])
# What torch.cuda.is_available() and error paths call: answer "no device" rather than abort.
special = {
    "cudaGetDeviceCount": "int NAME(int *n) { if (n) *n = 0; return 100; }",  # cudaErrorNoDevice
    "cudaGetErrorString": 'const char *NAME(int e) { (void)e; return "no CUDA device (CUDA runtime stub: .torch-venv is for the CPU)"; }',
    "cudaGetErrorName": 'const char *NAME(int e) { (void)e; return "cudaErrorNoDevice"; }',
    "cudaGetLastError": "int NAME(void) { return 0; }",
    "cudaPeekAtLastError": "int NAME(void) { return 0; }",
    "cudaDriverGetVersion": "int NAME(int *v) { if (v) *v = 0; return 0; }",
    "cudaRuntimeGetVersion": "int NAME(int *v) { if (v) *v = 0; return 0; }",
}
os.makedirs(out, exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    for so, syms in sorted(stubs.items()):
        src = ["#include <stdio.h>", "#include <stdlib.h>",
               "static void die(const char *s) { fprintf(stderr, \"%s: %s called: a stub made by scripts/make_torch_venv.sh"
               " (this torch has no CUDA libraries; it is for the CPU)\\n\", \"" + so + "\", s); abort(); }"]
        versions = {}
        for i, (name, (ver, typ)) in enumerate(sorted(syms.items())):
            if ver:
                versions.setdefault(ver, []).append(name)
            label = f'__asm__("{name}")'
            if typ == "OBJECT":
                src.append(f"char s{i}[4096] {label} __attribute__((aligned(64)));")
            elif name in special or name.startswith(("__cudaRegister", "__cudaUnregister")):
                # (the latter: what CUDA code's static constructors call when the library loads)
                # a declaration carries the asm label, then the definition
                fn = special.get(name, "void *NAME() { static void *h[8]; return h; }").replace("NAME", f"s{i}")
                src += [fn.split("{")[0].strip() + f" {label};", fn]
            else:
                src.append(f"void s{i}(void) {label}; void s{i}(void) {{ die(\"{name}\"); }}")
        c = os.path.join(tmp, so + ".c")
        open(c, "w").write("\n".join(src) + "\n")
        cmd = ["gcc", "-shared", "-fPIC", "-O1", "-w", "-o", os.path.join(out, so), f"-Wl,-soname,{so}", c]
        if versions:
            vs = os.path.join(tmp, so + ".map")
            open(vs, "w").write("".join(f"{v} {{ global: {' '.join(n + ';' for n in ns)} }};\n" for v, ns in versions.items()))
            cmd.append(f"-Wl,--version-script={vs}")
        subprocess.run(cmd, check=True)
        print(f"make_torch_venv: {os.path.join(out, so)}: stub of {len(syms)} symbol(s)")
if not every:
    with open(listing, "a") as f:
        f.write("".join(so + "\n" for so in sorted(stubs)))
EOF
"$py" -c "$check"

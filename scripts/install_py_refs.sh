#!/usr/bin/env bash
# Installs the Python packages the reference tests need that Debian does not package: diffusers
# (the samplers' reference, tests/torch/ddim_diffusers.py) and what it imports, at pinned versions
# that work with Debian's python3-torch (1.13) and python3-numpy (1.24). They go into .pydeps/ in
# the repository (git-ignored), never into the system; the scripts put it on sys.path themselves.
# Idempotent: nothing is fetched when the pinned diffusers is already there. Without network
# access the install fails with pip's message, and the tests that need it report "skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
target=.pydeps
want="diffusers==0.31.0"
if [ -f "$target/diffusers-0.31.0.dist-info/METADATA" ]; then
  echo "install_py_refs: $want present in $target"
  exit 0
fi
# --no-deps with the whole pinned closure listed: pip must not upgrade numpy (torch 1.13 needs 1.x)
# or pull anything Debian already provides.
python3=/usr/bin/python3
"$python3" -m pip --version >/dev/null 2>&1 || python3=python3
"$python3" -m pip install --quiet --disable-pip-version-check --no-deps --target "$target" --upgrade \
  "$want" "huggingface_hub==0.26.2" "packaging==24.2" "filelock==3.16.1" "regex==2024.11.6" \
  "importlib_metadata==8.5.0" "zipp==3.21.0" "typing_extensions==4.12.2" "pyyaml==6.0.2" "tqdm==4.67.1" \
  "fsspec==2024.10.0" "requests==2.32.3" "urllib3==2.2.3" "idna==3.10" "certifi==2024.8.30" \
  "charset_normalizer==3.4.0" "safetensors==0.4.5" "pillow==11.0.0" ||
  { echo "install_py_refs: pip failed; the diffusers reference tests will report skipped" >&2; exit 0; }
echo "install_py_refs: installed $want into $target"

#!/usr/bin/env bash
# Installs the Python packages the reference tests need that Debian does not package, at pinned
# versions that work with Debian's python3-torch (1.13), python3-numpy (1.24), python3-scipy and
# python3-torchvision (0.14):
#   diffusers and what it imports: the samplers' reference (tests/torch/ddim_diffusers.py ...);
#   pytorch-fid: the FID reference (tests/torch/fid_ref.py; it imports scipy and torchvision).
# They go into .pydeps/ in the repository (git-ignored), never into the system; the scripts put it on
# sys.path themselves. Idempotent: each pin is checked on its own, and nothing is fetched when all are
# there. Without network access the install fails with pip's message, and the tests that need the
# missing package report "skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
target=.pydeps
python3=/usr/bin/python3
"$python3" -m pip --version >/dev/null 2>&1 || python3=python3
pip_install() {
  "$python3" -m pip install --quiet --disable-pip-version-check --no-deps "$@"
}

# --no-deps with the whole pinned closure listed: pip must not upgrade numpy (torch 1.13 needs 1.x)
# or pull anything Debian already provides.
want="diffusers==0.31.0"
if [ -f "$target/diffusers-0.31.0.dist-info/METADATA" ]; then
  echo "install_py_refs: $want present in $target"
elif pip_install --target "$target" --upgrade \
  "$want" "huggingface_hub==0.26.2" "packaging==24.2" "filelock==3.16.1" "regex==2024.11.6" \
  "importlib_metadata==8.5.0" "zipp==3.21.0" "typing_extensions==4.12.2" "pyyaml==6.0.2" "tqdm==4.67.1" \
  "fsspec==2024.10.0" "requests==2.32.3" "urllib3==2.2.3" "idna==3.10" "certifi==2024.8.30" \
  "charset_normalizer==3.4.0" "safetensors==0.4.5" "pillow==11.0.0"; then
  echo "install_py_refs: installed $want into $target"
else
  echo "install_py_refs: pip failed; the diffusers reference tests will report skipped" >&2
fi

# pytorch-fid alone (its numpy, scipy, torch, torchvision and pillow are Debian's or above). It goes
# through a scratch folder and only its own two folders are moved in: pip --target --upgrade would
# replace .pydeps/bin, which diffusers' install filled.
want="pytorch-fid==0.3.0"
if [ -f "$target/pytorch_fid-0.3.0.dist-info/METADATA" ]; then
  echo "install_py_refs: $want present in $target"
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/dd_pydeps.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  if pip_install --target "$scratch" "$want"; then
    mkdir -p "$target"
    rm -rf "$target"/pytorch_fid "$target"/pytorch_fid-*.dist-info
    mv "$scratch/pytorch_fid" "$scratch/pytorch_fid-0.3.0.dist-info" "$target/"
    echo "install_py_refs: installed $want into $target"
  else
    echo "install_py_refs: pip failed; the pytorch-fid reference tests will report skipped" >&2
  fi
fi

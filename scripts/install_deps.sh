#!/usr/bin/env bash
# Installs the build and test dependencies from Debian's packages. Idempotent:
# packages already present are left alone, and apt is not touched at all when
# nothing is missing. The CUDA toolkit is not a Debian package here; CMake finds
# it at /usr/local/cuda when it exists (the CPU backend builds without it).
set -euo pipefail

packages=(
  build-essential cmake          # compiler, CMake + CTest
  libeigen3-dev                  # CPU GEMMs
  catch2                         # tests (v2, single header)
  libstb-dev                     # PNG writing / image loading
  zlib1g-dev                     # gzipped IDX files (Fashion-MNIST)
  nlohmann-json3-dev             # safetensors metadata
  libcli11-dev                   # command-line flags
  python3-torch python3-numpy    # PyTorch parity tests (Debian's /usr/bin/python3)
  python3-scipy python3-torchvision  # pytorch-fid's imports (the FID reference, tests/torch/fid_ref.py)
  python3-pip                    # scripts/install_py_refs.sh: diffusers and pytorch-fid, pinned, into .pydeps/
  dataset-fashion-mnist          # real images at /usr/share/datasets/fashion-mnist
  clang libclang-rt-dev          # scripts/fuzz.sh: libFuzzer harnesses under ASan + UBSan
  libopenmpi-dev openmpi-bin     # data-parallel CPU training (train_ddpm under mpirun; optional at build time)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

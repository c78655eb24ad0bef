#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs but a bare GPU machine lacks into .gpu-deps/ (in .gitignore):
# the header-only and static build dependencies from this machine's Debian packages (Eigen, Catch2,
# CLI11, nlohmann-json, stb with its prebuilt libstb.a, zlib's header and libz.a), with their CMake
# package files, mirrored under .gpu-deps/usr so the packages' relative paths still hold; and the
# Fashion-MNIST training images. About 40 MB: within what travels to a lent GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
DEST=.gpu-deps
rm -rf "$DEST"
mkdir -p "$DEST/usr/include" "$DEST/usr/lib" "$DEST/usr/share" "$DEST/fashion-mnist"
copy() { mkdir -p "$DEST$(dirname "$1")" && cp -a "$1" "$DEST$1"; }
for d in /usr/include/eigen3 /usr/share/eigen3 /usr/include/catch2 /usr/lib/cmake/Catch2 /usr/include/CLI \
         /usr/share/cmake/CLI11 /usr/include/nlohmann /usr/share/cmake/nlohmann_json /usr/include/stb \
         /usr/include/zlib.h /usr/include/zconf.h; do
  copy "$d"
done
ML=$(gcc -print-multiarch)
for f in "/usr/lib/$ML/libstb.a" "/usr/lib/$ML/libz.a" /usr/lib/libCatch2WithMain.a; do copy "$f"; done
# zconf.h may live in the multiarch include folder.
[ -f "/usr/include/$ML/zconf.h" ] && copy "/usr/include/$ML/zconf.h"
cp /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz "$DEST/fashion-mnist/"
echo "pack_gpu_deps: $(du -sh "$DEST" | cut -f1) in $DEST; carry it: run(command='bash scripts/gpu_check.sh', carry=['.gpu-deps'])"

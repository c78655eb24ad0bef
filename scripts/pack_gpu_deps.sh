#!/usr/bin/env bash
# Packs into .gpu-deps/ (git-ignored) what the GPU commands (scripts/gpu_check.sh, bench/run_gpu.sh)
# need but a bare lent GPU machine lacks, within the 64 MiB that travels with a call:
#   - bin.tgz: the binaries they run (dd_gpu_tests, train_ddpm, sample_ddpm, the bench binaries),
#     built here: Release, sm_90, x86-64-v3 instead of -march=native (the lent machine's CPU is
#     another), stb linked statically, libgomp beside them, a stamp of the sources they were built
#     from. The GPU scripts use them only when the stamp matches, which saves the on-device build;
#   - usr/: the header-only and static build dependencies from this machine's Debian packages (Eigen,
#     Catch2, CLI11, nlohmann-json, stb with libstb.a, zlib's header and libz.a) with their CMake
#     package files, mirrored under .gpu-deps/usr, for the on-device build when the stamp differs;
#   - fashion-mnist/: the first 20000 training images.
# --no-binaries skips the build (the GPU machine then builds, several minutes of device time).
# Prints the build time and the pack's size.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
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
# The first 20000 training images (the check's 300 steps of batch 64 see 19200), header count
# rewritten: the full file (26 MiB) would push the pack past what travels.
python3 - "$DEST/fashion-mnist/train-images-idx3-ubyte.gz" <<'PY'
import gzip, struct, sys
keep = 20000
with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", "rb") as f:
    magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
    assert magic == 0x803 and n >= keep, (magic, n)
    body = f.read(keep * rows * cols)
with gzip.open(sys.argv[1], "wb", compresslevel=9) as g:
    g.write(struct.pack(">IIII", magic, keep, rows, cols) + body)
PY

if [ "${1:-}" != "--no-binaries" ]; then
  # shellcheck source=scripts/gpu_common.sh
  source scripts/gpu_common.sh
  B=${PACK_BUILD_DIR:-build-gpu-pack}
  gen=()
  command -v ninja >/dev/null && [ ! -f "$B/Makefile" ] && gen=(-G Ninja)
  t0=$SECONDS
  cmake -S . -B "$B" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DDD_NATIVE=OFF \
    -DCMAKE_CXX_FLAGS="-march=x86-64-v3" -DSTB_LIBRARY="/usr/lib/$ML/libstb.a" >/dev/null
  cmake --build "$B" -j"$(nproc)" --target dd_gpu_tests train_ddpm sample_ddpm dd_bench >/dev/null
  build_s=$((SECONDS - t0))
  stage=$(mktemp -d)
  mkdir -p "$stage/bin/lib"
  cp "$B/tests/dd_gpu_tests" "$B/train_ddpm" "$B/sample_ddpm" "$B"/bench/bench_* "$stage/bin/"
  strip "$stage"/bin/* 2>/dev/null || true
  cp -L "$(gcc -print-file-name=libgomp.so.1)" "$stage/bin/lib/"
  gpu_source_stamp >"$stage/bin/STAMP"
  git describe --always --dirty 2>/dev/null >"$stage/bin/COMMIT" || echo unknown >"$stage/bin/COMMIT"
  tar -czf "$DEST/bin.tgz" -C "$stage" bin
  rm -rf "$stage"
  echo "pack_gpu_deps: built the GPU binaries in ${build_s} s on $(nproc) cores ($B); stamp $(gpu_source_stamp)"
fi
total=$(du -sb "$DEST" | cut -f1)
echo "pack_gpu_deps: $((total >> 20)) MiB in $DEST (limit for what travels: 64 MiB with the tree);" \
     "carry it: run(command='bash scripts/gpu_check.sh', carry=['.gpu-deps'])"
[ "$total" -lt $((60 << 20)) ] || { echo "pack_gpu_deps: $DEST is over 60 MiB: it will not travel" >&2; exit 1; }

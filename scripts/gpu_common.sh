# Sourced by scripts/gpu_check.sh and bench/run_gpu.sh: finds or builds the binaries a GPU machine
# runs, so both commands use the same ones.
#
# Binaries come from one of two places:
#   1. .gpu-deps/bin.tgz, built on the CPU machine by `scripts/pack_gpu_deps.sh` (same x86-64, same
#      CUDA 13; no -march=native) and carried along, unpacked under $TMPDIR. Used only when its source stamp matches the
#      sources here, every library it needs resolves, and it starts; this saves the on-device build.
#   2. Otherwise a Release build for sm_${CUDA_ARCH:-90} in $BUILD_DIR of only the given targets,
#      with every core (ninja when present), using .gpu-deps/usr when the system lacks Eigen & co.
#
# After gpu_binaries TARGETS...: $GPU_BIN_DIR holds train_ddpm, sample_ddpm (and dd_gpu_tests when
# asked for), $GPU_BENCH_DIR the bench binaries, $GPU_BIN_ORIGIN says which of the two it was,
# $GPU_BUILD_SECONDS how long the build took (0 when carried), and $DD_COMMIT the commit they were
# built from. Needs $ROOT (the repository root).

BUILD_DIR=${BUILD_DIR:-build-gpu}

# A hash of every file that goes into the binaries, the same here and on the GPU machine (whose copy
# of the tree may have no .git).
gpu_source_stamp() {
  (cd "$ROOT" && find CMakeLists.txt engine kernels autograd models apps tests bench -type f \
     \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name 'CMakeLists.txt' -o -name '*.cmake' \) \
     -not -path 'tests/torch/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

gpu_commit() {
  git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown
}

# Where the CUDA libraries of a lent machine may live: the toolkit, and the pip wheels PyTorch brings.
gpu_library_path() {
  local dirs=("${GPU_PREBUILT_DIR:-/nonexistent}/lib" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
  local py
  py=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null) || py=""
  [ -n "$py" ] && for d in "$py"/nvidia/*/lib; do dirs+=("$d"); done
  local IFS=:
  echo "${dirs[*]}"
}

# True when the prebuilt binaries are for these sources and run here (it may extend
# LD_LIBRARY_PATH to get there); else false with the reason in $GPU_PREBUILT_WHY.
gpu_prebuilt_ok() {
  local tgz=$ROOT/.gpu-deps/bin.tgz want have
  GPU_PREBUILT_WHY=""
  if [ ! -f "$tgz" ]; then GPU_PREBUILT_WHY="no prebuilt binaries (.gpu-deps/bin.tgz)"; return 1; fi
  if [ "${CUDA_ARCH:-90}" != 90 ]; then GPU_PREBUILT_WHY="CUDA_ARCH=$CUDA_ARCH: the carried binaries are for sm_90"; return 1; fi
  # Unpacked outside the tree, so a later call does not carry them twice; named by the archive's
  # hash, so a rerun on the same machine finds them again.
  local dir=${TMPDIR:-/tmp}/dd-gpu-bin-$(sha256sum "$tgz" | cut -c1-12)
  if [ ! -f "$dir/bin/STAMP" ]; then
    mkdir -p "$dir" && tar -xzf "$tgz" -C "$dir" || { GPU_PREBUILT_WHY="cannot unpack $tgz"; return 1; }
  fi
  local bin=$dir/bin
  GPU_PREBUILT_DIR=$bin
  want=$(gpu_source_stamp)
  have=$(cat "$bin/STAMP" 2>/dev/null)
  if [ "$want" != "$have" ]; then
    GPU_PREBUILT_WHY="the prebuilt binaries are for other sources (stamp ${have:-none}, these sources $want)"
    return 1
  fi
  if ldd "$bin"/*_* 2>/dev/null | grep -q "not found"; then
    export LD_LIBRARY_PATH=$(gpu_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    if ldd "$bin"/*_* 2>/dev/null | grep -q "not found"; then
      GPU_PREBUILT_WHY="the prebuilt binaries miss libraries: $(ldd "$bin"/*_* 2>/dev/null | grep 'not found' | sort -u | tr -s ' \t\n' ' ')"
      return 1
    fi
  fi
  if ! "$bin/train_ddpm" --help >/dev/null 2>&1; then GPU_PREBUILT_WHY="the prebuilt train_ddpm does not start"; return 1; fi
}

gpu_binaries() {
  GPU_BUILD_SECONDS=0
  if gpu_prebuilt_ok; then
    GPU_BIN_ORIGIN="carried .gpu-deps/bin.tgz (stamp $(cat "$GPU_PREBUILT_DIR/STAMP"), built on the CPU machine from $(cat "$GPU_PREBUILT_DIR/COMMIT"))"
    GPU_BIN_DIR=$GPU_PREBUILT_DIR
    GPU_BENCH_DIR=$GPU_PREBUILT_DIR
    DD_COMMIT=$(cat "$GPU_PREBUILT_DIR/COMMIT" 2>/dev/null || echo unknown)
    export DD_COMMIT
    return 0
  fi
  echo "gpu_binaries: building here: $GPU_PREBUILT_WHY" >&2
  local args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}")
  command -v ninja >/dev/null && [ ! -f "$BUILD_DIR/Makefile" ] && args+=(-G Ninja)
  if [ ! -f /usr/include/eigen3/Eigen/Core ]; then
    if [ ! -d "$ROOT/.gpu-deps/usr" ]; then
      echo "gpu_binaries: this machine lacks the build dependencies and there is no .gpu-deps/: run" >&2
      echo "  scripts/pack_gpu_deps.sh where the Debian packages are, and carry .gpu-deps along" >&2
      return 2
    fi
    local deps=$ROOT/.gpu-deps/usr
    args+=(-DCMAKE_PREFIX_PATH="$deps" -DCMAKE_CXX_FLAGS="-isystem $deps/include"
           -DCMAKE_CUDA_FLAGS="-isystem $deps/include")
  fi
  # cuDNN (bench_conv2d's yardstick) may come only with PyTorch's wheels on a lent machine.
  local cudnn
  cudnn=$(python3 -c 'import nvidia.cudnn as c; print(list(c.__path__)[0])' 2>/dev/null) \
    && [ -d "$cudnn/include" ] && args+=(-DDD_CUDNN_ROOT="$cudnn")
  local t0=$SECONDS
  cmake -S "$ROOT" -B "$BUILD_DIR" "${args[@]}" >"${GPU_BUILD_LOG:-/dev/null}" 2>&1 || return 1
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "$@" >>"${GPU_BUILD_LOG:-/dev/null}" 2>&1 || return 1
  GPU_BUILD_SECONDS=$((SECONDS - t0))
  GPU_BIN_ORIGIN="built here in ${GPU_BUILD_SECONDS} s ($BUILD_DIR, $(nproc) cores)"
  GPU_BIN_DIR=$BUILD_DIR
  GPU_BENCH_DIR=$BUILD_DIR/bench
  DD_COMMIT=$(gpu_commit)
  export DD_COMMIT
}

# Where dd_gpu_tests is for the origin found above.
gpu_tests_binary() {
  if [ -x "$GPU_BIN_DIR/dd_gpu_tests" ]; then echo "$GPU_BIN_DIR/dd_gpu_tests"; else echo "$GPU_BIN_DIR/tests/dd_gpu_tests"; fi
}

#!/usr/bin/env bash
# --precision bf16 trains as fp32 does: 200 steps of a small seed U-Net on Fashion-MNIST in fp32 and in
# bf16 from the same seed (the same weights, batches, timesteps and noise), then compares the loss
# curves. Both runs draw the same numbers, so the curves differ only by the arithmetic; the check is
# on the mean loss over each 50-step window (one step's loss is too noisy to compare): every window
# within MARGIN (1%) of fp32's, and the bf16 run must not be bitwise fp32 (the policy took effect).
# It also checks that a bf16 checkpoint resumes in fp32 and the config records each run's precision.
# Usage: precision_curve.sh BUILD_DIR DATA_DIR SOURCE_DIR
set -euo pipefail
B=$1
DATA=$2
SRC=$3
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
if [ ! -d "$DATA" ]; then
  echo "precision_curve: no Fashion-MNIST images ($2 or .gpu-deps/fashion-mnist): skipped"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "precision_curve: FAIL: $*" >&2; exit 1; }
flags=(--data "$DATA" --image-size 16 --dim 8 --dim-mults 1,2 --timesteps 200 --batch-size 8 --log-every 1
       --sample-every 0 --save-every 0 --n-samples 1 --sample-steps 1 --seed 5 --device cpu --threads 1)
for p in fp32 bf16; do
  "$B/train_ddpm" --out "$T/$p" "${flags[@]}" --steps 200 --precision $p >"$T/$p.log" 2>&1 || { cat "$T/$p.log"; fail "$p run"; }
done
"$PY" - "$T/fp32/metrics.csv" "$T/bf16/metrics.csv" <<'PYEOF' || fail "loss curves"
import csv, sys
def losses(path):
    with open(path) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert len(a) == len(b) == 200, (len(a), len(b))
assert a != b, "the bf16 run is bitwise the fp32 run: --precision bf16 changed nothing"
MARGIN = 0.01  # measured 2026-11-27: at most 0.05% (batch 16) and 0.10% (batch 8)
for w in range(0, 200, 50):
    ma, mb = sum(a[w:w + 50]) / 50, sum(b[w:w + 50]) / 50
    rel = abs(mb - ma) / ma
    print(f"steps {w + 1}-{w + 50}: fp32 {ma:.5f} bf16 {mb:.5f} relative {rel:.4f}")
    assert rel <= MARGIN, f"window {w + 1}-{w + 50}: bf16 mean loss {mb} is {rel:.3f} from fp32's {ma}"
PYEOF
grep -q '"precision": *"bf16"' "$T/bf16/config.json" || fail "config.json does not record bf16"
# A bf16 run resumed in fp32: fp32 weights and moments were saved, so it simply goes on.
"$B/train_ddpm" --out "$T/bf16" "${flags[@]}" --steps 210 --resume --precision fp32 >"$T/resume.log" 2>&1 ||
  { cat "$T/resume.log"; fail "bf16 -> fp32 resume"; }
grep -q "precision fp32" "$T/resume.log" || fail "the resumed run does not say it runs fp32"
grep -q '"precision": *"fp32"' "$T/bf16/config.json" || fail "config.json does not record the resumed fp32"
echo "precision_curve: ok"

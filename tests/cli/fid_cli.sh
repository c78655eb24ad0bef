#!/usr/bin/env bash
# FID from the command line (ddpm_tool fid / fid-stats, train_ddpm --fid-every) with random Inception
# weights in pytorch-fid's layout (tests/torch/inception_fid.py), converted as a user converts the real ones.
# Usage: fid_cli.sh BUILD_DIR DATA_DIR SOURCE_DIR. Skipped (77) without pytorch-fid/torchvision or the data.
set -euo pipefail
B=$1
DATA=$2
SRC=$3
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
if [ ! -d "$DATA" ]; then
  echo "fid_cli: no Fashion-MNIST images: skipped"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "fid_cli: FAIL: $*" >&2; exit 1; }

rc=0
"$PY" "$SRC/tests/torch/inception_fid.py" weights "$T/inc.pth" 7 >"$T/w.log" 2>&1 || rc=$?
[ $rc = 77 ] && { cat "$T/w.log"; exit 77; }
[ $rc = 0 ] || { cat "$T/w.log"; fail "random Inception weights"; }
# The converter refuses a file that is not pytorch-fid's, unless told.
if "$PY" "$SRC/scripts/convert_inception.py" "$T/inc.pth" "$T/inc.safetensors" >"$T/c.log" 2>&1; then
  fail "convert_inception accepted weights that are not pytorch-fid's without --allow-other"
fi
grep -q "does not start with 6726825d" "$T/c.log" || { cat "$T/c.log"; fail "convert_inception: unclear refusal"; }
"$PY" "$SRC/scripts/convert_inception.py" "$T/inc.pth" "$T/inc.safetensors" --allow-other >"$T/c.log" 2>&1 ||
  { cat "$T/c.log"; fail "convert_inception --allow-other"; }
W=$T/inc.safetensors

# A tiny model and two folders of its samples.
"$B/train_ddpm" --out "$T/run" --steps 2 --data "$DATA" --image-size 8 --dim 8 --dim-mults 1,2 --timesteps 6 \
  --batch-size 4 --sample-every 0 --save-every 0 --n-samples 4 --device cpu >"$T/train.log" 2>&1 ||
  { cat "$T/train.log"; fail "train_ddpm"; }
"$B/sample_ddpm" --weights "$T/run" --n 12 --batch-size 6 --seed 1 --each-dir "$T/a" --out "$T/a.png" --device cpu >"$T/a.log" 2>&1 ||
  { cat "$T/a.log"; fail "sample_ddpm a"; }
"$B/sample_ddpm" --weights "$T/run" --n 12 --batch-size 6 --seed 2 --each-dir "$T/b" --out "$T/b.png" --device cpu >"$T/b.log" 2>&1 ||
  { cat "$T/b.log"; fail "sample_ddpm b"; }

# Statistics files both ways, then FID between folders, files and mixtures of the two.
"$B/ddpm_tool" fid-stats --inception "$W" --data "$T/b" --out "$T/b.npz" --device cpu >"$T/s.log" 2>&1 ||
  { cat "$T/s.log"; fail "fid-stats .npz"; }
"$B/ddpm_tool" fid-stats --inception "$W" --data "$T/b" --out "$T/b.safetensors" --device cpu >"$T/s2.log" 2>&1 ||
  { cat "$T/s2.log"; fail "fid-stats .safetensors"; }
grep -q "wrote $T/b.safetensors: 12 images" "$T/s2.log" || { cat "$T/s2.log"; fail "fid-stats: no count"; }
"$B/ddpm_tool" fid --inception "$W" --gen "$T/a" --ref "$T/b" --device cpu >"$T/f1.out" 2>"$T/f1.log" ||
  { cat "$T/f1.log"; fail "fid folder vs folder"; }
"$B/ddpm_tool" fid --inception "$W" --gen "$T/a" --ref "$T/b.npz" --device cpu >"$T/f2.out" 2>"$T/f2.log" ||
  { cat "$T/f2.log"; fail "fid folder vs npz"; }
f1=$(sed -n 's/^FID: //p' "$T/f1.out")
f2=$(sed -n 's/^FID: //p' "$T/f2.out")
[ -n "$f1" ] && [ "$f1" = "$f2" ] || fail "FID against the folder ($f1) and its saved statistics ($f2) differ"
grep -q "biased upward" "$T/f1.log" || fail "no warning about 12 images"
grep -q "not comparable with published ones" "$T/f1.log" || fail "no warning about unofficial Inception weights"
# Statistics against themselves: 0, with no Inception needed.
"$B/ddpm_tool" fid --gen "$T/b.safetensors" --ref "$T/b.npz" >"$T/f3.out" 2>"$T/f3.log" ||
  { cat "$T/f3.log"; fail "fid stats vs stats"; }
"$PY" -c "import sys; v = float(sys.argv[1]); sys.exit(0 if abs(v) < 1e-6 else 1)" "$(sed -n 's/^FID: //p' "$T/f3.out")" ||
  { cat "$T/f3.out"; fail "FID of a set against itself is not 0"; }
# A model as --gen: sampled on the fly (the same 12 images as folder a: same seed and batch size).
"$B/ddpm_tool" fid --inception "$W" --gen "$T/run" --n 12 --sample-batch 6 --seed 1 --ref "$T/b.npz" --device cpu \
  >"$T/f4.out" 2>"$T/f4.log" || { cat "$T/f4.log"; fail "fid of a model"; }
# Inception batches of 6 instead of 12 change the summation order (not the images): 1e-6 relative.
"$PY" -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= 1e-6 * max(1.0, abs(b)) else 1)" \
  "$(sed -n 's/^FID: //p' "$T/f4.out")" "$f2" ||
  { cat "$T/f4.out"; fail "FID of samples drawn on the fly differs from that of the same samples as PNGs ($f2)"; }
# Errors: images without --inception, a missing reference.
if "$B/ddpm_tool" fid --gen "$T/a" --ref "$T/b.npz" >"$T/e1.log" 2>&1; then fail "images scored without --inception"; fi
grep -q -- "--inception is needed" "$T/e1.log" || { cat "$T/e1.log"; fail "no --inception: unclear error"; }
if "$B/ddpm_tool" fid --inception "$W" --gen "$T/a" --ref "$T/nothing" --device cpu >"$T/e2.log" 2>&1; then
  fail "a missing reference was accepted"
fi
grep -q -- "--ref $T/nothing: does not exist" "$T/e2.log" || { cat "$T/e2.log"; fail "missing reference: the error does not name it"; }

# FID during training: scored at steps 2 and 4, logged, plotted; a resume from step 2 drops the step-4 row.
"$B/train_ddpm" --out "$T/frun" --steps 4 --data "$DATA" --image-size 8 --dim 8 --dim-mults 1,2 --timesteps 6 \
  --batch-size 4 --sample-every 0 --save-every 2 --keep-checkpoints 3 --n-samples 4 --device cpu --fid-every 2 \
  --fid-samples 6 --fid-batch 3 --fid-ref "$T/b.safetensors" --fid-inception "$W" --sample-steps 3 \
  >"$T/ft.log" 2>&1 || { cat "$T/ft.log"; fail "train_ddpm --fid-every"; }
[ "$(cut -d, -f1 "$T/frun/fid.csv" | tr '\n' ' ')" = "step 2 4 " ] || { cat "$T/frun/fid.csv"; fail "fid.csv rows"; }
[ -s "$T/frun/fid_curve.png" ] || fail "no fid_curve.png"
grep -q "FID at step 4" "$T/ft.log" || { cat "$T/ft.log"; fail "the log has no FID"; }
# A damaged newest checkpoint: --resume takes step 2's, drops the step-4 score and scores step 4 again.
row4=$(grep '^4,' "$T/frun/fid.csv" | cut -d, -f2)
head -c 100 "$T/frun/checkpoint.safetensors" >"$T/cut" && mv "$T/cut" "$T/frun/checkpoint.safetensors"
"$B/train_ddpm" --out "$T/frun" --resume --steps 4 --device cpu >"$T/fr.log" 2>&1 || { cat "$T/fr.log"; fail "resume"; }
grep -q "resuming .* at step 2 " "$T/fr.log" || { cat "$T/fr.log"; fail "did not resume from step 2"; }
grep -q "FID reference: .*b.safetensors" "$T/fr.log" || { cat "$T/fr.log"; fail "the resumed run lost --fid-ref"; }
[ "$(cut -d, -f1 "$T/frun/fid.csv" | tr '\n' ' ')" = "step 2 4 " ] || { cat "$T/frun/fid.csv"; fail "fid.csv after resume"; }
[ "$(grep '^4,' "$T/frun/fid.csv" | cut -d, -f2)" = "$row4" ] || fail "the resumed run's step-4 FID differs (CPU runs are bitwise)"
echo "fid_cli: ok (FID of 12 vs 12 samples: $f1)"

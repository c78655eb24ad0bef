#!/usr/bin/env bash
# sample_ddpm --each-dir as a streamed, resumable job (apps/ddpm/sample_job.h): an interrupted job (a
# killed process leaves some batches written, maybe a temporary file) continues where it stopped and ends
# with the images of an uninterrupted run, bit for bit; another job's folder is refused.
# Usage: sample_job.sh BUILD_DIR DATA_DIR SOURCE_DIR
set -euo pipefail
B=$1
DATA=$2
SRC=$3
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
if [ ! -d "$DATA" ]; then
  echo "sample_job: no Fashion-MNIST images: skipped"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "sample_job: FAIL: $*" >&2; exit 1; }

"$B/train_ddpm" --out "$T/run" --steps 2 --data "$DATA" --image-size 8 --dim 8 --dim-mults 1,2 --timesteps 6 \
  --batch-size 4 --sample-every 0 --save-every 0 --n-samples 4 --device cpu >"$T/train.log" 2>&1 ||
  { cat "$T/train.log"; fail "train_ddpm"; }
job=(--weights "$T/run" --n 11 --batch-size 4 --seed 5 --device cpu)

"$B/sample_ddpm" "${job[@]}" --each-dir "$T/whole" --out "$T/whole.png" >"$T/whole.log" 2>&1 ||
  { cat "$T/whole.log"; fail "uninterrupted job"; }
[ "$(ls "$T/whole"/*.png | wc -l)" = 11 ] || fail "expected 11 PNGs"
[ -s "$T/whole.png" ] || fail "a small job drawn in one go writes its grid"

# An interrupted job: batch 0 complete, batch 1 with one image, a temporary file of a dead process.
mkdir -p "$T/part"
cp "$T/whole/.sample_job.json" "$T/part/"
cp "$T/whole/00000.png" "$T/whole/00001.png" "$T/whole/00002.png" "$T/whole/00003.png" "$T/whole/00004.png" "$T/part/"
printf 'partial' >"$T/part/00005.png.tmp-999999"
"$B/sample_ddpm" "${job[@]}" --each-dir "$T/part" >"$T/part.log" 2>&1 || { cat "$T/part.log"; fail "resumed job"; }
grep -q "continuing the job at image 4 of 11 (1 batches already written)" "$T/part.log" ||
  { cat "$T/part.log"; fail "the resumed job does not say where it continues"; }
for f in "$T"/whole/*.png; do
  cmp -s "$f" "$T/part/$(basename "$f")" || fail "$(basename "$f") differs from the uninterrupted job's"
done
[ ! -e "$T/part/00005.png.tmp-999999" ] || fail "the dead process's temporary file was left"
"$B/sample_ddpm" "${job[@]}" --each-dir "$T/part" >"$T/done.log" 2>&1 || { cat "$T/done.log"; fail "complete job rerun"; }
grep -q "all 11 images are already there" "$T/done.log" || { cat "$T/done.log"; fail "a complete job was redrawn"; }

# Another job's folder (another seed), or PNGs without a job file: refused, nothing written.
if "$B/sample_ddpm" --weights "$T/run" --n 11 --batch-size 4 --seed 6 --device cpu --each-dir "$T/part" \
    >"$T/other.log" 2>&1; then
  fail "a job with another seed was run in the folder"
fi
grep -q "holds the samples of another job (seed is 5 there, 6 now)" "$T/other.log" ||
  { cat "$T/other.log"; fail "another job: unclear error"; }
mkdir -p "$T/stray" && cp "$T/whole/00000.png" "$T/stray/"
if "$B/sample_ddpm" "${job[@]}" --each-dir "$T/stray" >"$T/stray.log" 2>&1; then fail "a folder of stray PNGs was used"; fi
grep -q "but no .sample_job.json" "$T/stray.log" || { cat "$T/stray.log"; fail "stray PNGs: unclear error"; }
echo "sample_job: ok"

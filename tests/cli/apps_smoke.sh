#!/usr/bin/env bash
# The three apps end to end from the command line, as a user runs them: a tiny training run on the
# real Fashion-MNIST images, a resume, sampling, ddpm_tool info and forward, and the --device flag
# (cuda without a usable device must fail with a clear message and leave the run untouched).
# Usage: apps_smoke.sh BUILD_DIR DATA_DIR SOURCE_DIR
set -euo pipefail
B=$1
DATA=$2
SRC=$3
PY=${DD_TORCH_PYTHON:-/usr/bin/python3}
# A lent GPU machine has no Debian dataset package: scripts/pack_gpu_deps.sh carries the images.
[ -d "$DATA" ] || DATA=$SRC/.gpu-deps/fashion-mnist
if [ ! -d "$DATA" ]; then
  echo "apps_smoke: no Fashion-MNIST images ($2 or .gpu-deps/fashion-mnist): skipped"
  exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "apps_smoke: FAIL: $*" >&2; exit 1; }

common=(--data "$DATA" --image-size 16 --dim 8 --dim-mults 1,2 --timesteps 10 --batch-size 4 --log-every 1
        --sample-every 0 --save-every 0 --n-samples 4 --device cpu)
"$B/train_ddpm" --out "$T/run" --steps 3 "${common[@]}" >"$T/train.log" 2>&1 || { cat "$T/train.log"; fail "train_ddpm"; }
for f in checkpoint.safetensors model.safetensors metrics.csv config.json samples/step_0000003.png; do
  [ -s "$T/run/$f" ] || fail "train_ddpm wrote no $f"
done
grep -q "device cpu" "$T/train.log" || fail "train_ddpm did not say which device it used"

# Resume to step 5; the metrics continue from step 3.
"$B/train_ddpm" --out "$T/run" --resume --steps 5 --device cpu >"$T/resume.log" 2>&1 || { cat "$T/resume.log"; fail "resume"; }
[ "$(tail -n 1 "$T/run/metrics.csv" | cut -d, -f1)" = 5 ] || fail "resumed run did not reach step 5"

# --device cuda where no device (or no CUDA build) is available: a clear error, nothing overwritten.
if ! "$B/sample_ddpm" --help >/dev/null 2>&1; then fail "sample_ddpm --help"; fi
before=$(sha256sum "$T/run/checkpoint.safetensors")
if "$B/train_ddpm" --out "$T/run" --resume --steps 6 --device cuda >"$T/cuda.log" 2>&1; then
  grep -q "device cuda" "$T/cuda.log" || fail "--device cuda succeeded but the log names no cuda device"
  echo "apps_smoke: a CUDA device is present; --device cuda trained"
else
  grep -q -- "--device cuda" "$T/cuda.log" || { cat "$T/cuda.log"; fail "--device cuda failed without naming the flag"; }
  [ "$before" = "$(sha256sum "$T/run/checkpoint.safetensors")" ] || fail "a refused --device cuda changed the checkpoint"
fi
if "$B/train_ddpm" --out "$T/run2" --steps 1 --device tpu "${common[@]:0:$((${#common[@]} - 2))}" >"$T/bad.log" 2>&1; then
  fail "--device tpu was accepted"
fi
grep -q "must be cpu, cuda or auto" "$T/bad.log" || { cat "$T/bad.log"; fail "--device tpu: unclear error"; }
# --cuda-graphs on with the CPU: refused, naming the flag, before anything is written.
if "$B/train_ddpm" --out "$T/run3" --steps 1 --cuda-graphs on "${common[@]:0:$((${#common[@]} - 2))}" --device cpu \
    >"$T/graphs.log" 2>&1; then
  fail "--cuda-graphs on was accepted on the CPU"
fi
grep -q -- "--cuda-graphs on needs --device cuda" "$T/graphs.log" || { cat "$T/graphs.log"; fail "--cuda-graphs on: unclear error"; }
[ ! -e "$T/run3/checkpoint.safetensors" ] || fail "a refused --cuda-graphs on wrote a checkpoint"

# Another objective with min-SNR weighting and offset noise: trained, recorded in the weights file, sampled.
"$B/train_ddpm" --out "$T/vpred" --steps 2 --objective pred_v --min-snr --offset-noise 0.1 "${common[@]}" \
  >"$T/vpred.log" 2>&1 || { cat "$T/vpred.log"; fail "train_ddpm --objective pred_v"; }
grep -q "pred_v, min-SNR gamma 5" "$T/vpred.log" || { cat "$T/vpred.log"; fail "pred_v run: the log names no objective"; }
"$B/ddpm_tool" info "$T/vpred/model.safetensors" | grep -q '"objective": "pred_v"' || fail "weights file lacks the objective"
for smp in ddpm ddim dpmpp; do
  "$B/sample_ddpm" --weights "$T/vpred/model.safetensors" --n 2 --sampler $smp --out "$T/v_$smp.png" --device cpu \
    >"$T/v_$smp.log" 2>&1 || { cat "$T/v_$smp.log"; fail "sample_ddpm --sampler $smp of a pred_v model"; }
done
# Zero terminal SNR (needs v or x0 prediction) with accumulated micro-batches, recorded in the weights
# file; every sampler and option runs on it (Algorithm 2 would divide by sqrt(alpha_T) = 0).
if "$B/train_ddpm" --out "$T/zbad" --steps 1 --rescale-zero-terminal-snr "${common[@]}" >"$T/zbad.log" 2>&1; then
  fail "--rescale-zero-terminal-snr with pred_noise was accepted"
fi
grep -q "needs --objective pred_v" "$T/zbad.log" || { cat "$T/zbad.log"; fail "zero SNR with pred_noise: unclear error"; }
# Errors name the repository-relative source line, not the build machine's path.
grep -q "^train_ddpm: error: apps/ddpm/trainer.cpp:[0-9]*: " "$T/zbad.log" ||
  { cat "$T/zbad.log"; fail "the error names no repository-relative file:line"; }
"$B/train_ddpm" --out "$T/zsnr" --steps 2 --objective pred_v --rescale-zero-terminal-snr --grad-accum 2 \
  "${common[@]}" >"$T/zsnr.log" 2>&1 || { cat "$T/zsnr.log"; fail "train_ddpm --rescale-zero-terminal-snr --grad-accum 2"; }
grep -q "batch 2 x 4 (accumulated)" "$T/zsnr.log" || { cat "$T/zsnr.log"; fail "grad-accum: the log does not say so"; }
"$B/ddpm_tool" info "$T/zsnr/model.safetensors" | grep -q '"rescale_zero_terminal_snr": true' ||
  fail "weights file lacks rescale_zero_terminal_snr"
for opts in "--sampler ddpm" "--sampler respaced --steps 4" "--sampler respaced --respacing ddim5 --dynamic-thresholding" \
    "--sampler ddim --steps 5 --timestep-spacing trailing --dynamic-thresholding" \
    "--sampler dpmpp --steps 4 --karras-sigmas --dynamic-thresholding --dynamic-thresholding-ratio 0.9"; do
  # shellcheck disable=SC2086
  "$B/sample_ddpm" --weights "$T/zsnr/model.safetensors" --n 2 $opts --out "$T/z.png" --device cpu \
    >"$T/z.log" 2>&1 || { cat "$T/z.log"; fail "sample_ddpm $opts at zero terminal SNR"; }
  [ -s "$T/z.png" ] || fail "sample_ddpm $opts wrote no PNG"
  rm "$T/z.png"
done
"$B/ddpm_tool" schedule "$T/zsnr/model.safetensors" --sampler respaced --respacing 2,3 >"$T/zsched.txt" 2>&1 ||
  { cat "$T/zsched.txt"; fail "ddpm_tool schedule --sampler respaced"; }
[ "$(awk 'NR > 2 { printf "%s ", $2 }' "$T/zsched.txt")" = "9 7 5 4 0 " ] ||
  { cat "$T/zsched.txt"; fail "ddpm_tool schedule: respaced timesteps"; }
# The learning-rate warm-up and schedule reach the optimiser (metrics.csv's lr column), with AdamW.
"$B/train_ddpm" --out "$T/sched" --steps 4 --lr 0.001 --lr-warmup-steps 2 --lr-schedule linear --weight-decay 0.01 \
  "${common[@]}" >"$T/sched.log" 2>&1 || { cat "$T/sched.log"; fail "train_ddpm --lr-schedule"; }
lrs=$(awk -F, 'NR > 1 { printf "%s ", $3 }' "$T/sched/metrics.csv")
[ "$lrs" = "0 0.0005 0.001 0.0005 " ] || fail "lr warm-up then linear decay: metrics.csv has lr '$lrs'"
"$B/sample_ddpm" --weights "$T/run/model.safetensors" --n 3 --batch-size 2 --out "$T/grid.png" \
  --trajectory "$T/strip.png" --frames 3 --device cpu >"$T/sample.log" 2>&1 || { cat "$T/sample.log"; fail "sample_ddpm"; }
[ -s "$T/grid.png" ] && [ -s "$T/strip.png" ] || fail "sample_ddpm wrote no PNGs"
"$B/sample_ddpm" --weights "$T/run/model.safetensors" --n 2 --sampler ddim --steps 4 --eta 0.5 \
  --timestep-spacing trailing --out "$T/ddim.png" --trajectory "$T/ddim_strip.png" --frames 3 --device cpu \
  >"$T/ddim.log" 2>&1 || { cat "$T/ddim.log"; fail "sample_ddpm --sampler ddim"; }
[ -s "$T/ddim.png" ] && [ -s "$T/ddim_strip.png" ] || fail "sample_ddpm --sampler ddim wrote no PNGs"
"$B/sample_ddpm" --weights "$T/run/model.safetensors" --n 2 --sampler dpmpp --steps 5 --order 3 --out "$T/dpm.png" \
  --device cpu >"$T/dpm.log" 2>&1 || { cat "$T/dpm.log"; fail "sample_ddpm --sampler dpmpp"; }
[ -s "$T/dpm.png" ] || fail "sample_ddpm --sampler dpmpp wrote no PNG"
"$B/sample_ddpm" --weights "$T/run/model.safetensors" --n 2 --sampler ddpm --steps 5 --variance-type fixed_large \
  --clip-sample --out "$T/ddpm5.png" --device cpu >"$T/ddpm5.log" 2>&1 || { cat "$T/ddpm5.log"; fail "sample_ddpm respaced"; }
[ -s "$T/ddpm5.png" ] || fail "sample_ddpm --sampler ddpm --steps 5 wrote no PNG"
if "$B/sample_ddpm" --weights "$T/run/model.safetensors" --sampler ddim --steps 11 --out "$T/bad.png" --device cpu \
    >"$T/ddim_bad.log" 2>&1; then
  fail "sample_ddpm --steps 11 of 10 timesteps was accepted"
fi
grep -q -- "--steps 11" "$T/ddim_bad.log" || { cat "$T/ddim_bad.log"; fail "--steps 11: unclear error"; }

"$B/ddpm_tool" schedule "$T/run/model.safetensors" --sampler ddim --steps 4 >"$T/sched.txt" 2>&1 ||
  { cat "$T/sched.txt"; fail "ddpm_tool schedule"; }
[ "$(awk 'NR > 2 { printf "%s ", $2 }' "$T/sched.txt")" = "6 4 2 0 " ] || { cat "$T/sched.txt"; fail "ddpm_tool schedule: timesteps"; }
"$B/ddpm_tool" info "$T/run/model.safetensors" >"$T/info.log" 2>&1 || fail "ddpm_tool info"
grep -q "parameters:" "$T/info.log" || fail "ddpm_tool info printed no parameter count"
# ddpm_tool forward: the PyTorch-side file format in (NCHW x, int64 t), model_output out.
"$PY" - "$SRC/tests/torch" "$T/in.safetensors" <<'PYEOF' || fail "writing the forward input"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import safetensors_io
rng = np.random.default_rng(0)
safetensors_io.save(sys.argv[2], {"x": rng.standard_normal((2, 1, 16, 16)).astype("float32"),
                                  "t": np.array([0, 9], dtype="int64")})
PYEOF
"$B/ddpm_tool" forward --weights "$T/run/model.safetensors" --input "$T/in.safetensors" --output "$T/out.safetensors" \
  --device cpu >"$T/forward.log" 2>&1 || { cat "$T/forward.log"; fail "ddpm_tool forward"; }
"$PY" - "$SRC/tests/torch" "$T/out.safetensors" <<'PYEOF' || fail "ddpm_tool forward's output"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import safetensors_io
out, _ = safetensors_io.load(sys.argv[2])
y = np.asarray(out["model_output"])
assert y.shape == (2, 1, 16, 16), y.shape
assert np.isfinite(y).all()
PYEOF

# diffusers' UNet2DModel family: a tiny --model-config run (dropout), resumed, exported as a diffusers
# pipeline folder, which sample_ddpm, ddpm_tool info and ddpm_tool forward then read.
cat >"$T/unet2d.json" <<'JSON'
{"block_out_channels": [16, 32], "layers_per_block": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
 "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 8, "attention_head_dim": null,
 "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "norm_eps": 1e-6}
JSON
"$B/train_ddpm" --out "$T/u2" --steps 2 --model-config "$T/unet2d.json" --dropout 0.1 --loss l2 "${common[@]}" \
  >"$T/u2.log" 2>&1 || { cat "$T/u2.log"; fail "train_ddpm --model-config"; }
grep -q "UNet2DModel" "$T/u2.log" || { cat "$T/u2.log"; fail "--model-config run: the log names no UNet2DModel"; }
"$B/train_ddpm" --out "$T/u2" --resume --steps 3 --device cpu >"$T/u2r.log" 2>&1 || { cat "$T/u2r.log"; fail "unet2d resume"; }
"$B/ddpm_tool" export-diffusers "$T/u2" "$T/u2_diffusers" >"$T/u2e.log" 2>&1 || { cat "$T/u2e.log"; fail "export-diffusers"; }
for f in model_index.json unet/config.json unet/diffusion_pytorch_model.safetensors scheduler/scheduler_config.json; do
  [ -s "$T/u2_diffusers/$f" ] || fail "export-diffusers wrote no $f"
done
"$B/ddpm_tool" info "$T/u2_diffusers" >"$T/u2i.log" 2>&1 || { cat "$T/u2i.log"; fail "ddpm_tool info DIR/"; }
grep -q '"variance_type": "fixed_large"' "$T/u2i.log" || { cat "$T/u2i.log"; fail "ddpm_tool info: no scheduler"; }
"$B/sample_ddpm" --weights "$T/u2_diffusers/" --n 2 --steps 4 --out "$T/u2.png" --device cpu >"$T/u2s.log" 2>&1 ||
  { cat "$T/u2s.log"; fail "sample_ddpm --weights DIR/"; }
[ -s "$T/u2.png" ] || fail "sample_ddpm from a diffusers folder wrote no PNG"
"$B/ddpm_tool" forward --weights "$T/u2_diffusers" --input "$T/in.safetensors" --output "$T/u2out.safetensors" \
  --device cpu >"$T/u2f.log" 2>&1 || { cat "$T/u2f.log"; fail "ddpm_tool forward --weights DIR/"; }
# A .bin-only folder: a clear error with the conversion line.
mkdir -p "$T/binonly" && cp "$T/u2_diffusers/unet/config.json" "$T/binonly/" && touch "$T/binonly/diffusion_pytorch_model.bin"
if "$B/ddpm_tool" info "$T/binonly" >"$T/bin.log" 2>&1; then fail "a .bin-only folder was accepted"; fi
grep -q "save_file(torch.load" "$T/bin.log" || { cat "$T/bin.log"; fail ".bin: no conversion line"; }
echo "apps_smoke: ok"

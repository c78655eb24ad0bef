#!/usr/bin/env bash
# scripts/gpu_cases.py, the GPU check's per-case runner, exercised on the CPU test binary so that a
# bug in it cannot waste a GPU lease: exact-name specs for names with Catch2's special characters
# (commas, brackets), a failing case named with its rerun command, and a case cut by the deadline
# reported as not checked rather than passed.
#   gpu_cases_runner.sh DD_TESTS_BINARY SOURCE_DIR
set -uo pipefail
T=$1
R="python3 $2/scripts/gpu_cases.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Names with ',' and '[' run alone and pass: every listed case must report PASS.
$R --binary "$T" --filter "[broadcast],[device]" --name ok --jobs 2 --deadline 120 --log-dir "$tmp" \
  --summary "$tmp/ok.sum" >"$tmp/ok.out" 2>&1 || { cat "$tmp/ok.out"; fail "passing cases reported a failure"; }
n=$("$T" --list-test-names-only "[broadcast],[device]" | grep -c .)
grep -q "^$n/$n passed" "$tmp/ok.sum" || fail "expected $n/$n passed, got: $(cat "$tmp/ok.sum")"
grep -q "PASS" "$tmp/ok.out" && ! grep -q "NO MATCH" "$tmp/ok.out" || fail "a spec matched no case"

# A case whose process fails is named, with a rerun command that names it exactly.
$R --binary "$T" --filter "[device]" --name bad --jobs 1 --deadline 60 --log-dir "$tmp" \
  --wrap "bash -c 'exit 3' x" >"$tmp/bad.out" 2>&1 && fail "a failing case passed"
grep -q "^---- FAIL: device: the CUDA probe skips only when there is no GPU" "$tmp/bad.out" || fail "failure not named"
grep -q "^rerun: CUDA_LAUNCH_BLOCKING=1 bash -c 'exit 3' x $T 'device: the CUDA probe" "$tmp/bad.out" \
  || { cat "$tmp/bad.out"; fail "no rerun command"; }

# A spec that matches nothing is never a pass.
$R --binary "$T" --filter "[device]" --name nomatch --jobs 1 --deadline 60 --log-dir "$tmp" \
  --wrap "bash -c 'exec \"\$1\" no-such-case-xyz' x" >"$tmp/nm.out" 2>&1 && { cat "$tmp/nm.out"; fail "an unmatched spec passed"; }
grep -q "NO MATCH" "$tmp/nm.out" || fail "unmatched spec not reported"

# Cut by the deadline: listed as not checked, and a failure only with --timeout-fails.
$R --binary "$T" --filter "[device]" --name slow --jobs 1 --deadline 8 --case-timeout 2 --log-dir "$tmp" \
  --wrap "bash -c 'sleep 30' x" >"$tmp/slow.out" 2>&1 || fail "a timeout failed without --timeout-fails"
grep -q "TIMEOUT" "$tmp/slow.out" && grep -q "not checked within the deadline" "$tmp/slow.out" || fail "timeout not reported"
$R --binary "$T" --filter "[device]" --name slow2 --jobs 1 --deadline 7 --case-timeout 2 --log-dir "$tmp" \
  --timeout-fails --wrap "bash -c 'sleep 30' x" >/dev/null 2>&1 && fail "--timeout-fails did not fail"
# --reverse starts from the last case (the first case's log is written last) and still passes all.
$R --binary "$T" --filter "[broadcast],[device]" --name rev --jobs 1 --deadline 120 --log-dir "$tmp" --reverse \
  --summary "$tmp/rev.sum" >"$tmp/rev.out" 2>&1 || { cat "$tmp/rev.out"; fail "--reverse reported a failure"; }
grep -q "^$n/$n passed" "$tmp/rev.sum" || fail "--reverse: expected $n/$n passed, got: $(cat "$tmp/rev.sum")"
[ "$(ls -tr "$tmp/rev" | tail -n 1)" = 000.log ] || fail "--reverse did not run the first case last: $(ls -tr "$tmp/rev" | tr '\n' ' ')"
# --first starts the cases its spec matches (the [device] ones, listed after [broadcast]'s) before
# the others, and still runs every case; a --first spec that matches nothing changes nothing.
nd=$("$T" --list-test-names-only "[device]" | grep -c .)
$R --binary "$T" --filter "[broadcast],[device]" --name first --jobs 1 --deadline 120 --log-dir "$tmp" \
  --first "[device]" --summary "$tmp/first.sum" >"$tmp/first.out" 2>&1 || { cat "$tmp/first.out"; fail "--first reported a failure"; }
grep -q "^$n/$n passed" "$tmp/first.sum" || fail "--first: expected $n/$n passed, got: $(cat "$tmp/first.sum")"
first_logs=$(ls -tr "$tmp/first" | head -n "$nd" | sort | tr '\n' ' ')
want=$(for i in $(seq $((n - nd)) $((n - 1))); do printf '%03d.log ' "$i"; done)
[ "$first_logs" = "$want" ] || fail "--first did not start the [device] cases first: ran $first_logs first, wanted $want"
$R --binary "$T" --filter "[device]" --name nofirst --jobs 1 --deadline 60 --log-dir "$tmp" --first "[no-such-tag]" \
  --summary "$tmp/nofirst.sum" >/dev/null 2>&1 || fail "--first with an unmatched spec failed"
grep -q "^$nd/$nd passed" "$tmp/nofirst.sum" || fail "--first with an unmatched spec: $(cat "$tmp/nofirst.sum")"
echo "gpu_cases_runner: ok"

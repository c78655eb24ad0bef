#!/usr/bin/env python3
"""Runs each Catch2 test case of a test binary in its own process, several at a time, under an
optional wrapper (compute-sanitizer), within a wall-clock deadline, and prints one row per case.

Why one process per case: on a GPU the first illegal address or launch failure poisons the CUDA
context, and every later case in the same process fails with the same error, hiding which kernel did
it. One process per case names the culprit, lets the cases run side by side on one GPU, and makes
each failure's rerun command exact.

  gpu_cases.py --binary T [--filter SPEC] [--jobs N] [--deadline S] [--case-timeout S]
               [--wrap "compute-sanitizer --tool memcheck ..."] [--env K=V ...]
               --name NAME --log-dir DIR [--summary FILE] [--timeout-fails] [--reverse] [--first SPEC]

--reverse starts from the last case: two tools sharing a window that reaches only part of the list
then cover both ends of it (the first GPU run's sanitizers all stopped at the same half).
--first SPEC starts the cases SPEC matches before the others: racecheck and synccheck take the
tensor-core kernels' cases ("[tc]": cp.async pipelines, ldmatrix, shared memory reused across
stages) first, whatever else their window reaches.

Exit status: 1 if any case failed (or timed out, with --timeout-fails), else 0. Cases left unstarted
or cut by the deadline are listed as not checked. The one-line result goes to --summary.
Standard library only: it runs under whatever python3 a bare GPU machine has.
"""
import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

SPECIAL = re.compile(r'([\\\[\],*~"])')


def catch_spec(name):
    """A test name as a Catch2 v2 test spec matching exactly that name (its special characters escaped)."""
    return SPECIAL.sub(r"\\\1", name)


def list_cases(binary, spec, env):
    cmd = [binary, "--list-test-names-only"] + ([spec] if spec else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if out.returncode not in (0,) and not out.stdout.strip():
        sys.exit(f"gpu_cases: listing the cases failed (exit {out.returncode}): {' '.join(cmd)}\n{out.stderr}")
    names = [l.rstrip("\n") for l in out.stdout.splitlines() if l.strip()]
    return [n[1:-1] if n.startswith('"#') and n.endswith('"') else n for n in names]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--deadline", type=float, default=600, help="seconds from now; unfinished cases are cut")
    ap.add_argument("--case-timeout", type=float, default=300)
    ap.add_argument("--wrap", default="")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--name", required=True)
    ap.add_argument("--log-dir", required=True)
    ap.add_argument("--summary", default="")
    ap.add_argument("--timeout-fails", action="store_true")
    ap.add_argument("--reverse", action="store_true", help="start from the last case")
    ap.add_argument("--first", default="",
                    help="a test spec whose cases start before the others (each part in list or --reverse order)")
    a = ap.parse_args()

    t_start = time.monotonic()
    end = t_start + a.deadline
    env = dict(os.environ)
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    names = list_cases(a.binary, a.filter, env)
    if not names:
        sys.exit(f"gpu_cases: no test case matches '{a.filter}' in {a.binary}")
    wrap = shlex.split(a.wrap)
    logs = os.path.join(a.log_dir, a.name)
    os.makedirs(logs, exist_ok=True)
    env_prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (kv.partition("=")[::2] for kv in a.env))

    def rerun(name):
        base = " ".join(shlex.quote(x) for x in wrap + [a.binary, catch_spec(name)])
        return f"CUDA_LAUNCH_BLOCKING=1 {env_prefix + ' ' if env_prefix else ''}{base}"

    def run(item):
        i, name = item
        log = os.path.join(logs, f"{i:03d}.log")
        left = end - time.monotonic()
        if left < 5:
            return dict(name=name, result="NOT RUN", seconds=0.0, log=log)
        t0 = time.monotonic()
        cmd = wrap + [a.binary, catch_spec(name)]
        with open(log, "w") as f:
            f.write(f"$ {' '.join(shlex.quote(x) for x in cmd)}\n")
            f.flush()
            # Its own process group: a sanitizer's target process dies with it when cut.
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                rc = p.wait(timeout=min(a.case_timeout, left))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = None
        secs = time.monotonic() - t0
        text = open(log, errors="replace").read()
        if rc is None:
            result = "TIMEOUT"
        elif rc != 0:
            result = "FAIL"
        elif not re.search(r"\bin 1 test case\b|test cases: 1 \|", text):
            result = "NO MATCH"  # the spec matched no case: never count that as a pass
        else:
            result = "PASS"
        return dict(name=name, result=result, seconds=secs, log=log, rc=rc)

    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        items = list(enumerate(names))
        order = items[::-1] if a.reverse else items
        if a.first:
            try:
                first = set(list_cases(a.binary, a.first, env))
            except SystemExit:  # the spec matches no case: nothing goes first
                first = set()
            order = [it for it in order if it[1] in first] + [it for it in order if it[1] not in first]
        rows = list(pool.map(run, order))
    rows.sort(key=lambda r: names.index(r["name"]))

    wall = time.monotonic() - t_start
    count = {k: sum(r["result"] == k for r in rows) for k in ("PASS", "FAIL", "TIMEOUT", "NOT RUN", "NO MATCH")}
    print(f"\n### {a.name}: {len(rows)} cases, {a.jobs} at a time, {wall:.0f} s"
          + (f" (wrapped: {a.wrap})" if a.wrap else ""))
    print(f"| {'case':<80} | {'result':<8} | {'s':>6} |")
    for r in rows:
        print(f"| {r['name'][:80]:<80} | {r['result']:<8} | {r['seconds']:6.1f} |")
    bad = [r for r in rows if r["result"] in ("FAIL", "NO MATCH") or (a.timeout_fails and r["result"] == "TIMEOUT")]
    for r in bad:
        print(f"\n---- {r['result']}: {r['name']}  (exit {r.get('rc')}, log {r['log']})")
        lines = open(r["log"], errors="replace").read().splitlines()
        print("\n".join(lines[-40:]))
        print(f"rerun: {rerun(r['name'])}")
    unchecked = [r["name"] for r in rows if r["result"] in ("TIMEOUT", "NOT RUN")]
    if unchecked:
        print(f"\nnot checked within the deadline ({len(unchecked)}): " + "; ".join(unchecked))
    summary = f"{count['PASS']}/{len(rows)} passed"
    for k in ("FAIL", "NO MATCH", "TIMEOUT", "NOT RUN"):
        if count[k]:
            summary += f", {count[k]} {k.lower()}"
    summary += f", {wall:.0f} s"
    if a.summary:
        with open(a.summary, "w") as f:
            f.write(summary + "\n")
    print(f"\n{a.name}: {summary}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

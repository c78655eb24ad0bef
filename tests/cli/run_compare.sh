# Sourced by the data-parallel CLI tests (needs PY and SRC):
#   same A B     the checkpoint and weights of run folders A and B are equal bit for bit (prints the count)
#   losses A     A's logged (step, loss) rows
same() {
  "$PY" - "$SRC/tests/torch" "$1" "$2" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
import safetensors_io
for name in ("checkpoint.safetensors", "model.safetensors"):
    a, _ = safetensors_io.load(sys.argv[2] + "/" + name)
    b, _ = safetensors_io.load(sys.argv[3] + "/" + name)
    assert sorted(a) == sorted(b), (name, sorted(a), sorted(b))
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), (name, k)
print("bitwise equal:", len(a), "tensors")
PYEOF
}
losses() { cut -d, -f1,2 "$1/metrics.csv"; }

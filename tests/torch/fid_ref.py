"""pytorch-fid as the reference for our FID statistics (models/fid_stats.h, tests/test_fid_stats.cpp).

usage:
  fid_ref.py frechet IN.safetensors OUT.safetensors
    IN: feature sets "a<K>" and "b<K>" (F32 [n, d]) for K = 0, 1, ...
    OUT: for each K, numpy's float64 statistics of each set, "mu_a<K>" [d], "sigma_a<K>" [d, d] (np.mean and
         np.cov(rowvar=False), what pytorch-fid's calculate_activation_statistics computes), the same for b,
         and "fid<K>" [1]: pytorch_fid.fid_score.calculate_frechet_distance of those (scipy's sqrtm).
  fid_ref.py npz DIR
    Reads DIR/ours.npz and DIR/ours.safetensors (both written by our save_stats from the same statistics):
    numpy must load the .npz (zipfile's CRC check included) with mu and sigma equal, bit for bit, to the
    safetensors' F64, each member's bytes equal to what numpy.lib.format writes for that array, and
    pytorch-fid's own loader (compute_statistics_of_path) must read it.
    Writes DIR/np_<savez|savez_compressed>_<f8|f4>.npz from random statistics (the same values in each,
    the f4 files rounded), DIR/np_expect.safetensors with those values as F64 ("mu_f8", "sigma_f8",
    "mu_f4", "sigma_f4": the f4 values widened exactly), and DIR/np_fid.safetensors: "fid" [1], pytorch-fid's
    distance between ours.npz and np_savez_f8.npz as its loader reads them.
Exit 77 when pytorch-fid (scripts/install_py_refs.sh puts it into .pydeps/) or what it imports (Debian's
python3-scipy, python3-torchvision) is missing.
"""
import io
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy as np  # noqa: E402

import safetensors_io  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "..", ".pydeps"))
try:
    # fid_score imports pytorch_fid.inception, which imports torchvision; the distance needs scipy.
    from pytorch_fid.fid_score import calculate_frechet_distance, compute_statistics_of_path  # noqa: E402
except Exception as e:  # noqa: BLE001
    print(f"pytorch-fid is not available ({e!r}); run scripts/install_deps.sh (python3-scipy, "
          "python3-torchvision) and scripts/install_py_refs.sh (pytorch-fid)")
    sys.exit(77)


def stats(features):
    act = features.astype(np.float64)
    return np.mean(act, axis=0), np.cov(act, rowvar=False)


def frechet(inp, out):
    feats, _ = safetensors_io.load(inp)
    result = {}
    k = 0
    while f"a{k}" in feats:
        mu_a, sigma_a = stats(feats[f"a{k}"])
        mu_b, sigma_b = stats(feats[f"b{k}"])
        result[f"mu_a{k}"], result[f"sigma_a{k}"] = mu_a, sigma_a
        result[f"mu_b{k}"], result[f"sigma_b{k}"] = mu_b, sigma_b
        result[f"fid{k}"] = np.array([calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b)], dtype=np.float64)
        k += 1
    assert k > 0, "no feature sets a0, b0 in the input"
    safetensors_io.save(out, result)


def npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def npz(folder):
    ours_npz = os.path.join(folder, "ours.npz")
    expect, _ = safetensors_io.load(os.path.join(folder, "ours.safetensors"))
    with zipfile.ZipFile(ours_npz) as z:
        assert z.testzip() is None, "a member of ours.npz fails its CRC check"
        names = sorted(z.namelist())
        assert names == ["mu.npy", "sigma.npy"], names
        for key in ("mu", "sigma"):
            member = z.read(key + ".npy")
            want = npy_bytes(expect[key])
            assert member == want, f"{key}.npy differs from numpy's bytes for the same array:\n{member[:128]!r}\n{want[:128]!r}"
    with np.load(ours_npz) as f:
        assert sorted(f.files) == ["mu", "sigma"], f.files
        for key in ("mu", "sigma"):
            got = f[key]
            assert got.dtype == np.float64 and got.shape == expect[key].shape, (key, got.dtype, got.shape)
            assert np.array_equal(got, expect[key]), f"{key} differs after numpy's np.load"
            assert got.flags["C_CONTIGUOUS"]

    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    d = 7
    mu = rng.standard_normal(d)
    x = rng.standard_normal((3 * d, d))
    sigma = np.cov(x, rowvar=False)
    values = {}
    for dtype in ("f8", "f4"):
        m, s = mu.astype(dtype), sigma.astype(dtype)
        np.savez(os.path.join(folder, f"np_savez_{dtype}.npz"), mu=m, sigma=s)
        np.savez_compressed(os.path.join(folder, f"np_savez_compressed_{dtype}.npz"), mu=m, sigma=s)
        values[f"mu_{dtype}"], values[f"sigma_{dtype}"] = m.astype(np.float64), s.astype(np.float64)
    safetensors_io.save(os.path.join(folder, "np_expect.safetensors"), values)

    m1, s1 = compute_statistics_of_path(ours_npz, None, 1, d, "cpu")
    m2, s2 = compute_statistics_of_path(os.path.join(folder, "np_savez_f8.npz"), None, 1, d, "cpu")
    fid = calculate_frechet_distance(m1, s1, m2, s2) if m1.shape == m2.shape else float("nan")
    safetensors_io.save(os.path.join(folder, "np_fid.safetensors"), {"fid": np.array([fid], dtype=np.float64)})


def main():
    mode = sys.argv[1]
    if mode == "frechet":
        frechet(sys.argv[2], sys.argv[3])
    elif mode == "npz":
        npz(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()

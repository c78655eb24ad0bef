"""diffusers for the reference scripts (ddim_diffusers.py, dpm_diffusers.py, ddpm_diffusers.py, optim_ref.py).

Importing this module puts the repository's .pydeps/ (scripts/install_py_refs.sh installs the pinned
diffusers there) on sys.path and imports diffusers; when that fails the process exits 77, which the
C++ side (run_reference_script) turns into a skipped test, never a passed one.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".pydeps"))
try:
    import diffusers  # noqa: F401
except Exception as e:  # noqa: BLE001
    print(f"diffusers is not available ({e}); run scripts/install_py_refs.sh")
    sys.exit(77)

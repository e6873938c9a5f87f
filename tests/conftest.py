"""Session-wide test settings.

JAX's persistent compilation cache in a fresh temporary directory for this pytest session:
tests that run the same training program several times (resume after a kill, the NaN stop,
the tiny workflow, the reduced claims run) compile each XLA program once instead of once per
run. The directory is new for every session, so no result depends on a cache left behind; a
JAX_COMPILATION_CACHE_DIR set by the caller wins.

XLA's backend optimisation level 0 for the same session (and its subprocesses): the tests'
programs are tiny, so XLA's LLVM passes cost far more than they save (they take about 40 % of
the time it takes to jit-compile a small krwd model's init; training jobs started by the CLI
already get level 0 from the smoke profile's xla_fast_compile). Optimisation passes do not
change float semantics (no fast-math either way); tests that compare JAX with PyTorch or with
the float64 reference keep their tolerances. XLA_FLAGS set by the caller are kept and win.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="dnarch-test-jax-cache-")
    # read by JAX at import, and inherited by the subprocesses (snakemake jobs) tests start
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE


if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = (flags + " --xla_backend_optimization_level=0").strip()


def pytest_sessionfinish(session, exitstatus):
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)

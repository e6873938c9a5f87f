#!/usr/bin/env bash
# One GPU session: every number the README's GPU tables need, in one folder.
#   bash pipelines/gpu_session.sh [OUT]            # on the GPU machine
#   TINY=1 bash pipelines/gpu_session.sh /tmp/gs   # dry run on a CPU: tiny shapes, seconds each
# Steps: the tests marked gpu; bench_gpu over the paper shapes (torch trim, virtual, bucketed,
# JAX); bucketed trim compiled (CUDA graphs) with TF32; pipelines.bench trim (trim/virtual at
# C/C_full = 1.0, 0.5, 0.25). Each step writes its log next to its CSV; a failed step does not
# stop the later ones (the exit status says whether any failed). Each JAX case compiles its
# step first (about 15 s on a CPU at paper sizes): for a short session, select --variants.
set -uo pipefail
OUT=${1:-results/gpu_session}
PY=${PY:-python}
mkdir -p "$OUT"
status=0
tiny=()
steps=(--steps 5 --warmup 2)
if [[ -n "${TINY:-}" ]]; then
    tiny=(--tiny --datasets listops cifar10 --variants ccnn krwd)
    steps=(--steps 1 --warmup 0)
fi
run() {  # name, command...
    local name=$1
    shift
    echo "== $name: $*" | tee "$OUT/$name.log"
    "$@" >>"$OUT/$name.log" 2>&1 || { echo "!! $name failed (see $OUT/$name.log)"; status=1; }
}
"$PY" -c "import torch, jax; print(torch.__version__, torch.cuda.is_available(), jax.devices())" \
    >"$OUT/devices.txt" 2>&1
if [[ -z "${TINY:-}" ]]; then
    run pytest_gpu "$PY" -m pytest -q -m gpu tests/implementations
fi
run bench_gpu "$PY" -m pipelines.bench_gpu "${tiny[@]}" "${steps[@]}" \
    --modes torch-trim torch-virtual torch-trim-bucketed jax --out "$OUT/gpu.csv"
run bench_gpu_compiled "$PY" -m pipelines.bench_gpu "${tiny[@]}" "${steps[@]}" \
    --modes torch-trim-bucketed --compile --tf32 --out "$OUT/gpu_compiled.csv"
if [[ -z "${TINY:-}" ]]; then
    run bench_trim "$PY" -m pipelines.bench trim --out "$OUT"
fi
echo "-> $OUT (status $status)"
exit $status

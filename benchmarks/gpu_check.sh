#!/usr/bin/env bash
# The GPU check (issues 14 and 20), as one short prepared script, within BUDGET_S (default 470 s,
# under 8 minutes) on one GPU; each unit writes its records as soon as it ends (the run folder's
# executor), so a cut-off run still leaves the units before it:
#   1. precision: the trained fixture in every CUDA (backend, precision) cell: eager fp32/fp16/bf16,
#      TensorRT fp16 (backend=tensorrt) and TensorRT int8 (the QDQ graph ONNX Runtime quantized,
#      run by its TensorRT execution provider); AP per cell, ΔAP, latency, diagnosis (suite=precision);
#   2. suite=paper_speed (protocol paper_t4: TensorRT FP16, batch 1, 640x640, the deploy engine with
#      the top-300 postprocessor inside) for D-FINE N/S and RT-DETR-R18;
#   3. the same models and deploy graph with torch.compile and ONNX Runtime (CUDA provider);
#   4. the records and a report, labelled with the GPU's real name.
# Random-init weights for speed (speed does not depend on weight values) unless WEIGHTS=official.
#
# A bare CUDA machine with torch and no network: no pip install here. What dfine-bench needs beyond
# torch comes as a folder of wheels (WHEELS, default wheels/; the README, "GPUs and several
# machines", says how to make it, <= 64 MB): each wheel is unpacked into a private folder put on
# PYTHONPATH. An absent TensorRT or ONNX Runtime GPU build skips its cells with one line.
#
#   benchmarks/gpu_check.sh            # on a machine with an NVIDIA GPU
#   benchmarks/gpu_check.sh --dry-run  # anywhere: print the commands and check every config composes
set -euo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
BUDGET_S="${BUDGET_S:-470}"
START_S=$(date +%s)
MODELS="[dfine_n,dfine_s,rtdetr_r18]"
WEIGHTS="${WEIGHTS:-random_init}"
PY="${PYTHON:-python3}"
# trtexec's rule: >= 200 ms warm-up, then >= 3 s and >= 10 timed iterations; NVML clocks and
# throttle reasons are read around each timing, TF32 recorded
TIMING=(profiling.warmup=20 profiling.warmup_time_s=0.2 profiling.min_time_s=3 profiling.min_iters=10
  profiling.iters=200 profiling.max_time_s=6)

WHEELS="${WHEELS:-$REPO/wheels}"
if [[ -d "$WHEELS" ]] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE="$REPO/results/_gpu_site"
  mkdir -p "$SITE"
  for w in "$WHEELS"/*.whl; do  # a wheel is a zip archive laid out for site-packages
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$SITE"
  done
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check: $(ls "$WHEELS"/*.whl | wc -l) wheel(s) from $WHEELS on PYTHONPATH (no pip install)"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi
missing="$("$PY" - <<'PY'
import importlib.util
need = ["torch", "transformers", "safetensors", "hydra", "omegaconf", "faster_coco_eval", "pycocotools",
        "pandas", "matplotlib", "jinja2", "yaml", "onnx", "scipy", "psutil", "tqdm"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
PY
)"
if [[ -n "$missing" && $DRY == 0 ]]; then
  echo "gpu_check: missing Python packages: $missing; make the wheels folder (README: GPUs and several machines)" >&2
  exit 2
fi

if [[ $DRY == 1 ]]; then
  GPU="dry-run"
else
  command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: this script needs an NVIDIA GPU" >&2; exit 2; }
  GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
fi
SLUG="$(echo "$GPU" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
echo "gpu_check: GPU '$GPU' (label $SLUG), budget ${BUDGET_S}s"

# which GPU runtimes are here: each absent one is a line, and its cells are left out
TRT=0; ORT_TRT=0; ORT_CUDA=0
if "$PY" -c 'import tensorrt' 2>/dev/null; then TRT=1; else echo "gpu_check: skip TensorRT cells: the tensorrt package is not installed"; fi
PROVIDERS="$("$PY" -c 'import onnxruntime as o; print(" ".join(o.get_available_providers()))' 2>/dev/null || true)"
[[ "$PROVIDERS" == *TensorrtExecutionProvider* ]] && ORT_TRT=1 || echo "gpu_check: skip TensorRT int8: ONNX Runtime has no TensorrtExecutionProvider (onnxruntime-gpu with TensorRT)"
[[ "$PROVIDERS" == *CUDAExecutionProvider* ]] && ORT_CUDA=1 || echo "gpu_check: skip ONNX Runtime CUDA: ONNX Runtime has no CUDAExecutionProvider (onnxruntime-gpu)"
if [[ $DRY == 1 ]]; then TRT=1; ORT_TRT=1; ORT_CUDA=1; fi

run() {  # a dfine-bench command within what is left of the budget; in a dry run its config is checked
  echo "+ dfine-bench $*"
  if [[ $DRY == 1 ]]; then
    [[ "$1" == report ]] || "$PY" -m dfine_bench "$1" --cfg "${@:2}" >/dev/null
    return 0
  fi
  local left=$(( BUDGET_S - ($(date +%s) - START_S) ))
  if (( left < 30 )); then echo "gpu_check: skip '$1 ${*:2}': ${left}s of the budget left" >&2; return 0; fi
  timeout "$left" "$PY" -m dfine_bench "$@" || echo "gpu_check: '$1 ${*:2}' ended with rc $? (records so far are kept); going on" >&2
}

# 1. the precision matrix on the GPU
CELLS=(eager eager_fp16 eager_bf16); EVAL=(eager eager-fp16 eager-bf16)
(( TRT )) && { CELLS+=(tensorrt); EVAL+=(tensorrt-fp16); }
if (( ORT_TRT )); then CELLS+=(onnxruntime_int8); EVAL+=(onnxruntime-int8); fi
join() { local IFS=,; echo "[$*]"; }
INT8_TRT=()
(( ORT_TRT )) && INT8_TRT=("backend.options.providers=[TensorrtExecutionProvider]")
run run suite=precision device=cuda "suite.backends=$(join "${CELLS[@]}")" "evaluation.backends=$(join "${EVAL[@]}")" \
  "${TIMING[@]}" "output.run_id=gpu-$SLUG-precision"
if (( ORT_TRT )); then  # TensorRT int8 from the QDQ graph: onnxruntime with its TensorRT provider
  run run suite=precision device=cuda backend=onnxruntime_int8 "${INT8_TRT[@]}" "evaluation.backends=[eager,onnxruntime-int8]" \
    "${TIMING[@]}" "output.run_id=gpu-$SLUG-precision-trt-int8"
fi
# 2. + 3. speed on the paper's protocol, then compile and ONNX Runtime CUDA on the same deploy graph
(( TRT )) && run profile suite=paper_speed device=cuda "suite.models=$MODELS" weights="$WEIGHTS" \
  "${TIMING[@]}" profiling.throughput=false "output.run_id=gpu-$SLUG-paper-t4"
run profile profiling.timed=model_postprocess backend=compile device=cuda "suite.models=$MODELS" weights="$WEIGHTS" \
  "${TIMING[@]}" profiling.throughput=false "output.run_id=gpu-$SLUG-compile"
(( ORT_CUDA )) && run profile profiling.timed=model_postprocess backend=onnxruntime "backend.options.providers=[CUDAExecutionProvider]" \
  device=cuda "suite.models=$MODELS" weights="$WEIGHTS" \
  "${TIMING[@]}" profiling.throughput=false "output.run_id=gpu-$SLUG-ort-cuda"
# 4. one report of whatever ran
RUNS=()
for r in precision precision-trt-int8 paper-t4 compile ort-cuda; do
  [[ -d "results/gpu-$SLUG-$r" || $DRY == 1 ]] && RUNS+=("results/gpu-$SLUG-$r")
done
[[ ${#RUNS[@]} -gt 0 ]] && run report "${RUNS[@]}" --out "reports/example-$SLUG" \
  --title "dfine-bench GPU example: $GPU (random-init unless WEIGHTS=official)"
echo "gpu_check: done in $(( $(date +%s) - START_S ))s; commit results/gpu-$SLUG-* records and reports/example-$SLUG"

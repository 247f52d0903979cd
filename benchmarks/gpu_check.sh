#!/usr/bin/env bash
# The GPU check of issue 14, as one short prepared script (about 10 minutes on one GPU):
#   1. suite=paper_speed (protocol paper_t4: TensorRT FP16, batch 1, 640x640, the deploy engine with
#      the top-300 postprocessor inside, checked against eager + postprocess) for D-FINE N/S/M/L/X
#      and RT-DETR-R18/R50;
#   2. the same models and the same deploy graph with torch.compile and ONNX Runtime (CUDA provider);
#   3. the fixture detector's AP at FP16 against FP32 (eager);
#   4. the records and a report, labelled with the GPU's real name, as a second example report.
# Random-init weights (speed does not depend on weight values) unless WEIGHTS=official is set.
#
#   benchmarks/gpu_check.sh            # on a machine with an NVIDIA GPU (and TensorRT)
#   benchmarks/gpu_check.sh --dry-run  # anywhere: print the commands and check every config composes
set -euo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
MODELS="[dfine_n,dfine_s,dfine_m,dfine_l,dfine_x,rtdetr_r18,rtdetr_r50]"
WEIGHTS="${WEIGHTS:-random_init}"
# trtexec's rule: >= 200 ms warm-up, then >= 3 s and >= 10 timed iterations; NVML clocks and
# throttle reasons are read around each timing (pip install nvidia-ml-py), TF32 recorded
TIMING=(profiling.warmup=20 profiling.warmup_time_s=0.2 profiling.min_time_s=3 profiling.min_iters=10
  profiling.iters=200 profiling.max_time_s=6)

if [[ $DRY == 1 ]]; then
  GPU="dry-run"
else
  command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: this script needs an NVIDIA GPU" >&2; exit 2; }
  GPU="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
fi
SLUG="$(echo "$GPU" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
echo "gpu_check: GPU '$GPU' (label $SLUG)"

run() {  # a dfine-bench command; in a dry run its composed config is checked instead
  echo "+ dfine-bench $*"
  if [[ $DRY == 1 ]]; then
    [[ "$1" == report ]] || dfine-bench "$1" --cfg "${@:2}" >/dev/null
  else
    timeout 300 dfine-bench "$@" || echo "gpu_check: '$1 ${*:2}' failed (rc $?); going on" >&2
  fi
}

run profile suite=paper_speed device=cuda "suite.models=$MODELS" weights="$WEIGHTS" \
  "${TIMING[@]}" profiling.throughput=false "output.run_id=gpu-$SLUG-paper-t4"
run profile profiling.timed=model_postprocess backend=compile device=cuda "suite.models=$MODELS" weights="$WEIGHTS" \
  "${TIMING[@]}" profiling.throughput=false "output.run_id=gpu-$SLUG-compile"
run profile profiling.timed=model_postprocess backend=onnxruntime "backend.options.providers=[CUDAExecutionProvider]" \
  device=cuda "suite.models=$MODELS" weights="$WEIGHTS" \
  "${TIMING[@]}" profiling.throughput=false "output.run_id=gpu-$SLUG-ort-cuda"
run run model=dfine_fixture device=cuda dataset=generated "evaluation.backends=[eager,eager-fp16]" \
  profiling.enabled=false "output.run_id=gpu-$SLUG-fixture-fp16"
run report "results/gpu-$SLUG-paper-t4" "results/gpu-$SLUG-compile" "results/gpu-$SLUG-ort-cuda" "results/gpu-$SLUG-fixture-fp16" \
  --out "reports/example-$SLUG" --title "dfine-bench GPU example: $GPU (random-init unless WEIGHTS=official)"
echo "gpu_check: done; commit results/gpu-$SLUG-* records and reports/example-$SLUG"

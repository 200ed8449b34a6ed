#!/usr/bin/env bash
# Issue 22 on a GPU machine: real sweeps through Ray on the GPU, packing measured end to end, the dry run's
# GPU-hours against the measured trial phase, and `--gpus-per-trial auto`'s choice against the measured best.
# On the lent GPU machine (Ray, Optuna, AdverTorch carried by ../shared/tools/device-carry.sh), in the repo root:
#     bash .devcarry/install.sh && export PYTHONPATH=/tmp/site:$PWD && bash benchmarks/gpu_ray_sweep.sh
# or on a GPU node of your cluster: PYTHON=.venv/bin/python OUT=/tmp/g22 bash benchmarks/gpu_ray_sweep.sh
#   1. lambda_feat_quick (embedded, 6 trials) at 1, 0.25 and auto GPU per trial, same --cpus-per-trial, final
#      stage on the GPU; then its dry run (GPU-hours, auto's recommendation). The CPU reference for its accuracies
#      (same seeds): python -m tuner.sweep --space lambda_feat_quick --iters 300 --cpus-per-trial 1
#   2. a generated 224 px ImageFolder tree (20 classes x 100 JPEGs), random-init resnet18 / resnet50 --weights,
#      4 Renofeation trials at 1, 0.5, 0.25 GPU per trial (bf16); resnet18 at 0.5 again with gpu_decode off
# Steps run most important first; none starts after BUDGET_S seconds (a device command is killed at 600 s).
# Everything lands in $OUT: per sweep its console log, nvidia-smi samples, trials.parquet and sweep.json;
# figures.jsonl (one line per sweep) and summary.txt (the figures side by side).
set -u
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_ray_sweep}
BUDGET_S=${BUDGET_S:-540}
CPUS=${CPUS:-2}                    # per trial, every run: 8 embedded trials fit on 16 cores
PAPER_CPUS=${PAPER_CPUS:-4}        # per paper-scale trial (its torch threads; 4 loader workers each)
ITERS_EMBEDDED=${ITERS_EMBEDDED:-300}
ITERS_PAPER=${ITERS_PAPER:-200}
WORK=${WORK:-/tmp/gpu_ray_sweep_work}  # runs, data, caches: large, not brought back
export PYTHONUNBUFFERED=1 RENOTUNE_CACHE=$WORK/cache
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
mkdir -p "$OUT" "$WORK/runs"
FIGURES=$OUT/figures.jsonl; touch "$FIGURES"
late() { if (( SECONDS > BUDGET_S )); then echo "== skipped, past ${BUDGET_S} s: $*"; return 0; fi; return 1; }

sweep() {  # NAME FLAGS...: one sweep with nvidia-smi sampling; its figures appended to figures.jsonl
  local name=$1 smi; shift
  late "sweep $name" && return 1
  echo "== $name ($SECONDS s): tuner.sweep $*"
  echo "$*" > "$OUT/$name.flags"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
    > "$OUT/$name.smi.csv" & smi=$!
  timeout $((BUDGET_S + 50 - SECONDS)) $PYTHON -m tuner.sweep --storage "$WORK/runs" --name "$name" --overwrite \
    "$@" > "$OUT/$name.log" 2>&1 || echo "== failed with exit $?: $name"
  kill $smi; grep -E "^(auto|trials done|error)" "$OUT/$name.log"; tail -2 "$OUT/$name.log"
  mkdir -p "$OUT/$name"
  cp "$WORK/runs/$name"/{trials.parquet,robustness.parquet,sweep.json} "$OUT/$name/" 2>/dev/null
  $PYTHON benchmarks/ray_sweep_figures.py summary "$WORK/runs/$name" "$OUT/$name.log" "$OUT/$name.smi.csv" \
    | tee -a "$FIGURES"
}

dry_run() {  # NAME: the dry run of sweep NAME's flags: GPU-hours, and auto's recommendation
  local name=$1
  [ -f "$OUT/$name.flags" ] || return 1  # the sweep itself was skipped
  late "dry run $name" && return 1
  echo "== dry run of $name ($SECONDS s)"
  # shellcheck disable=SC2046  # the recorded flags hold no spaces
  timeout $((BUDGET_S + 50 - SECONDS)) $PYTHON -m tuner.sweep --storage "$WORK/runs" --name "${name}_dry" \
    $(cat "$OUT/$name.flags") --dry-run > "$OUT/$name.dry_run.log" 2>&1 || echo "== failed with exit $?"
  cat "$OUT/$name.dry_run.log"; echo "DRYRUN $name $OUT/$name.dry_run.log" >> "$FIGURES"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/machine.txt"
$PYTHON -c "import torch, torchvision, ray; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
'ray', ray.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/machine.txt"

# 1. Packing through Ray, embedded scale.
embedded=(--space lambda_feat_quick --iters "$ITERS_EMBEDDED" --cpus-per-trial "$CPUS")
sweep embedded_1 "${embedded[@]}" --gpus-per-trial 1
sweep embedded_0.25 "${embedded[@]}" --gpus-per-trial 0.25
sweep embedded_auto "${embedded[@]}" --gpus-per-trial auto
dry_run embedded_1
dry_run embedded_0.25

# 2. Paper scale: 224 px JPEGs, random-init torchvision backbones as --weights, 4 trials.
data=$WORK/imagefolder
if ! late "paper scale"; then
  $PYTHON benchmarks/ray_sweep_figures.py imagefolder "$data" --classes 20 --per-class 100
  printf 'methods: [renofeation]\nparameters: {lambda_feat: {grid: [0.01, 0.1, 1.0, 10.0]}}\n' > "$data/four.yaml"
  for arch in resnet18 resnet50; do
    $PYTHON benchmarks/ray_sweep_figures.py weights $arch "$data/$arch.pt"
    paper=(--space "$data/four.yaml" --dataset imagefolder --data-root "$data" --arch $arch --weights "$data/$arch.pt"
           --iters "$ITERS_PAPER" --cpus-per-trial "$PAPER_CPUS" --no-attack)
    for gpus in 1 0.25 0.5; do sweep "${arch}_$gpus" "${paper[@]}" --gpus-per-trial $gpus; done
    dry_run "${arch}_1"
  done
  paper=("${paper[@]/resnet50/resnet18}")  # --arch and --weights back to resnet18
  sweep resnet18cpudecode_0.5 "${paper[@]}" --gpus-per-trial 0.5 --set gpu_decode=false
fi

$PYTHON benchmarks/ray_sweep_figures.py table "$FIGURES" | tee "$OUT/summary.txt"
echo "== done in $SECONDS s"

#!/usr/bin/env bash
# Every GPU figure of benchmarks/README.md and cluster/README.md's sizing table in one run (about 8 minutes on
# an H100/H200). Needs torch, torchvision and advertorch, not Ray: run it on a GPU node of your cluster as
#     PYTHON=.venv/bin/python bash benchmarks/gpu_figures.sh
# Each step runs even if one before it failed; the most important come first.
set -u
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
step() { echo; echo "== $*"; "$@" || echo "== failed with exit $?: $*"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
$PYTHON -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
step $PYTHON benchmarks/attack_stage.py --checkpoints 20
step $PYTHON benchmarks/trial_speed.py --arch resnet18 --image-size 224 --iters 30 \
    --methods finetune,delta,renofeation,delta_adv --precisions amp,fp32
step $PYTHON benchmarks/gpu_packing.py --arch resnet18 --image-size 224 --method renofeation --processes 1,2,4 --seconds 10
step $PYTHON benchmarks/trial_speed.py --arch resnet50 --image-size 224 --iters 20 \
    --methods finetune,renofeation,delta_adv --precisions amp,fp32
step $PYTHON benchmarks/trial_speed.py --arch mobilenet_v2 --image-size 224 --iters 20 \
    --methods finetune,renofeation --precisions amp,fp32
step $PYTHON benchmarks/trial_speed.py --arch resnet18_w32 --image-size 32 --iters 40 \
    --methods finetune,delta,renofeation,delta_adv --precisions amp,fp32
step $PYTHON benchmarks/gpu_packing.py --arch resnet18_w32 --image-size 32 --method renofeation --processes 1,2,4,8 \
    --seconds 8
step $PYTHON benchmarks/jpeg_loader.py --device cuda --images 400 --sweep-workers 0,4,8,16
step $PYTHON benchmarks/trial_speed.py --arch resnet18 --image-size 224 --iters 30 --methods finetune,renofeation \
    --precisions amp --compile

#!/usr/bin/env bash
# The CUDA checks of issue 20 as one script, for a machine with a GPU (CI has none):
#   1. the card, PyTorch's version, a two-epoch delivery run on CUDA and tests/test_cuda.py;
#   2. bench_images.py on CUDA: the CIFAR-10 lesson's DataLoader loop against trainwell's batch path;
#   3. the big-table benchmark (bench_big.py, the generated flights-shaped table) trained on CUDA,
#      bf16 and fp16 (dynamic loss scaling), each stopped at a cap;
#   4. the cifar10-upgraded preset on a generated CIFAR-shaped folder (cifar_like.py) for a few
#      epochs: fp32, bf16 and fp16.
# Each step has its own time limit, so one that hangs costs only its share; all output goes to
# OUTDIR/checks.log too.
#
#   bash benchmarks/gpu_checks.sh OUTDIR            # on the GPU machine, from the repository root
#   SMALL=1 DEVICE=cpu bash benchmarks/gpu_checks.sh /tmp/x   # a quick rehearsal of every step on the CPU
set -u
out=${1:-/tmp/gpu-checks}
mkdir -p "$out"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
small=${SMALL:-0}
export PYTHONPATH=$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
work=$(mktemp -d)
exec > >(tee -a "$out/checks.log") 2>&1

step() {  # step NAME SECONDS COMMAND...: run with a limit, print its exit status and seconds
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T), limit ${limit} s): $*"
    local start=$SECONDS
    timeout --signal=INT --kill-after=20 "$limit" "$@"
    echo "=== $name: exit $? in $((SECONDS - start)) s"
}

if [ "$small" = 1 ]; then
    images=512 width=16 rows=20000 cap=40 per_batch=1200 epochs=1 cifar_sets=(--set data.val_size=1000 --set model.channels=[16,32,64] --set model.head_width=64)
else
    images=8192 width=64 rows=300000 cap=90 per_batch=10000 epochs=3 cifar_sets=()
fi

step environment 60 bash -c "nvidia-smi -L 2>/dev/null; nproc; $py -c 'import torch, sys; print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.cuda.is_available() and torch.cuda.get_device_name(0))'"
step smoke 90 "$py" -m trainwell train --preset delivery-quick --set train.device="$device" --set train.max_epochs=2 --out "$work/smoke"

step cuda-tests 150 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py

images_device=$([ "$device" = cpu ] && echo cpu || echo cuda)
step images 100 "$py" benchmarks/bench_images.py --images "$images" --width "$width" --device "$images_device"

for amp in bf16 fp16; do
    step "big-table-$amp" $((cap + 90)) "$py" benchmarks/bench_big.py --rows "$rows" --skip lightgbm,rows --threads 4 \
        --cap "$cap" --set train.device="$device" --set train.amp="$amp"
done

step cifar-like-data 60 "$py" benchmarks/cifar_like.py "$work/cifar" --per-batch "$per_batch"
for amp in off bf16 fp16; do  # off: fp32, the baseline for the two halves
    step "cifar10-upgraded-$amp" 110 "$py" -m trainwell train --preset cifar10-upgraded --set data.path="$work/cifar" \
        --set train.device="$device" --set train.amp="$amp" --set train.max_epochs="$epochs" --set train.threads=4 \
        "${cifar_sets[@]}" --out "$work/cifar-$amp"
    cp "$work/cifar-$amp/history.csv" "$out/cifar-$amp-history.csv" 2>/dev/null
done
echo "=== done $(date +%T)"

#!/usr/bin/env bash
# The GPU figures in one script, for a lent GPU machine (or any CUDA box with PyTorch):
#
#   DATA=DIR OUT=/tmp/gpu bash benchmarks/gpu_check.sh smoke          # every path, small
#   DATA=DIR OUT=/tmp/gpu bash benchmarks/gpu_check.sh iwae throughput ttq
#
# Steps (run in the order given):
#   env         the GPU, driver and torch;
#   tests       the tests that need a GPU (tests/test_cuda_graphs.py: graphed runs against eager ones);
#   smoke       each path below on a few images or seconds, with a time per path;
#   iwae        `aevb evaluate pretrained:NAME --iwae-samples 5000` on the full test set for every
#               shipped neural model, each line of $OUT/iwae.jsonl with its wall time;
#   compile     IWAE_5000 of the VRNN on 500 test images, eager against torch.compile;
#   throughput  benchmarks/throughput.py --device cuda (recipe batch and a batch of 4096);
#   ttq         benchmarks/time_to_quality.py --device cuda for $MODELS (default: vae gmvae vrnn) with
#               $BUDGET training seconds per loop (default 450: the reference GMVAE needs about 400 s
#               on an H100, the VRNN about 250 s; one model per call fits a 10-minute device call).
#               $TTQ_ARGS goes to the script as it is, e.g. "--no-compile".
#   ttq-compile aevb's loop alone (no reference) for $MODELS, to the tutorial's number with $BUDGET
#               seconds (default 90), in a process per setting in $SETTINGS (default "--no-compile
#               --compile"; "default" passes neither), each with empty inductor and Triton caches, or
#               with CACHE=shared one pair of caches per model, empty for its first setting only:
#               whether compiling repays itself in runs this short on a GPU, cold and warm.
# Runs without installing aevb (PYTHONPATH=src), so the machine's own PyTorch build is used.
# Everything printed also goes to $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/aevb-gpu}
DATA=${DATA:-../shared/data}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1

aevb() { python3 -m aevb "$@"; }
say() { echo "== $(date -u +%H:%M:%S) $*"; }

# IWAE_K of one shipped model on the test set (first N images if N is given), appended to
# $OUT/iwae.jsonl as {"name", "seconds", "device", "metrics"}.
iwae() {
    local name=$1 k=$2 n=${3:-} start end
    start=$(date +%s.%N)
    if aevb evaluate "pretrained:$name" --device cuda --iwae-samples "$k" --json --data-dir "$DATA" \
        ${n:+--subset $n} >"$OUT/one.json"; then
        end=$(date +%s.%N)
        python3 -c "import json, sys, torch; m = json.load(open(sys.argv[1])); \
print(json.dumps({'name': sys.argv[2], 'seconds': round($end - $start, 1), \
'device': torch.cuda.get_device_name(), 'metrics': m}))" "$OUT/one.json" "$name" \
            | tee -a "$OUT/iwae.jsonl"
    else
        say "FAILED: iwae $name"
    fi
    rm -f "$OUT/one.json"
}

for step in "$@"; do
    say "$step"
    case $step in
    env)
        nvidia-smi -L
        python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
        ;;
    tests)
        timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py || say "FAILED: tests"
        ;;
    smoke)
        iwae vrnn-mnist 5000 200
        iwae vae-mnist 5000 1000
        timeout 150 python3 benchmarks/throughput.py --device cuda --models vae --large-batch 0 \
            --seconds 1 || say "FAILED: throughput"
        timeout 90 python3 benchmarks/time_to_quality.py --device cuda --data-dir "$DATA" \
            --models vae --budget 10 || say "FAILED: time_to_quality"
        ;;
    iwae)
        for name in vrnn-mnist vae-mnist cvae-mnist gmvae-mnist gmvae-umap-mnist vae-bernoulli-mnist; do
            iwae "$name" 5000
        done
        ;;
    compile)
        python3 - "$DATA" <<'EOF'
import sys, time
from aevb import evaluate as ev
from aevb.runs import open_run
model, cfg, data, meta = open_run("pretrained:vrnn-mnist", "cuda", data_dir=sys.argv[1])
for on in ((), ("cuda",), ("cuda",)):  # eager, then compiled twice (the second without compiling)
    ev.COMPILE_IWAE_ON = on
    start = time.perf_counter()
    r = ev.evaluate(model, data, "test", 1000, 5000, subset=500)
    print(f"compile {'on' if on else 'off'}: {time.perf_counter() - start:.1f} s, IWAE_5000 {r['iwae']:.3f}")
EOF
        ;;
    throughput)
        python3 benchmarks/throughput.py --device cuda --large-batch 4096 --seconds 5 \
            | tee "$OUT/throughput.md"
        ;;
    ttq)
        python3 benchmarks/time_to_quality.py --device cuda --data-dir "$DATA" --budget "${BUDGET:-450}" --models ${MODELS:-vae gmvae vrnn} ${TTQ_ARGS:-} \
            | tee "$OUT/time_to_quality.md"
        ;;
    ttq-compile)
        for name in ${MODELS:-vae gmvae vrnn}; do
            shared=$(mktemp -d)
            for setting in ${SETTINGS:---no-compile --compile}; do
                cache=$([ "${CACHE:-}" = shared ] && echo "$shared" || mktemp -d)
                say "aevb $name $setting (caches: $cache, $(du -sh "$cache" | cut -f1))"
                TORCHINDUCTOR_CACHE_DIR=$cache/inductor TRITON_CACHE_DIR=$cache/triton \
                    python3 benchmarks/time_to_quality.py --device cuda --data-dir "$DATA" --loops aevb \
                    --budget "${BUDGET:-90}" --models "$name" ${setting/#default/} | tee -a "$OUT/ttq-compile.md"
                [ "$cache" = "$shared" ] || rm -rf "$cache"
            done
            rm -rf "$shared"
        done
        ;;
    *) say "unknown step $step"; exit 2 ;;
    esac
done
say done

#!/usr/bin/env bash
# Capture the bundled examples on a real GPU (run on a lent GPU machine; not part of CI).
# Usage: scripts/gpu-capture.sh OUTDIR   -> OUTDIR/<example>.tar.gz traces and a log.
set -euo pipefail
out=${1:?usage: scripts/gpu-capture.sh OUTDIR}
mkdir -p "$out"
py=${PYTHON:-python3}
suffix=$($py -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
gcc -O2 -shared -fPIC -o "tracer/_interpose$suffix" tracer/_interpose.c -ldl -lpthread
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
nvidia-smi -L | tee "$out/gpu.txt"
for ex in imagenet_jpeg detection_preload; do
  $py -m trainio.tracer capture --out "/tmp/gpu-$ex" -- $py "examples/$ex.py" --device cuda --workers 4 --epochs 3 \
    2>&1 | tee -a "$out/log.txt"
  $py -m trainio.tracer summary "/tmp/gpu-$ex" --json > "$out/$ex-summary.json"
  tar -C /tmp -czf "$out/$ex-gpu.tar.gz" "gpu-$ex"
done

#!/bin/bash
# Two torchrun "nodes" of one CPU process each on this machine, meeting through a c10d rendezvous on
# localhost, pretraining a tiny tokenizer through scripts/torchrun_pretrain.sh; then checks that both ranks
# ended with identical codebooks and weights.
#
#   scripts/cluster/torchrun-two-nodes.sh [WORK=/tmp/neurofm-torchrun] [STEPS=8]
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-/tmp/neurofm-torchrun}
STEPS=${2:-8}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rm -rf "$WORK/run" "$WORK/ranks"
if [ ! -f "$WORK/store/manifest.json" ]; then
    $PY -m neurofm.cli preprocess --dataset eegmat --root data/sample/eegmat --pipeline eeg-200hz \
        --out "$WORK/store" --no-report --quiet
fi
scripts/cluster/tiny-overlay.sh "$WORK" "$STEPS" > /dev/null
PORT=${PORT:-29477}
export NNODES=2 RDZV_ENDPOINT="localhost:$PORT" RDZV_ID="neurofm-$$"
for NODE in 0 1; do
    PATH="$(dirname "$PY"):$PATH" scripts/torchrun_pretrain.sh 1 configs/pretrain/neurorvq-tiny.yaml "$WORK/store" \
        --config "$WORK/tiny.yaml" > "$WORK/node$NODE.log" 2>&1 &
    PIDS[$NODE]=$!
done
STATUS=0
for NODE in 0 1; do wait "${PIDS[$NODE]}" || STATUS=$?; done
if [ "$STATUS" != 0 ]; then
    echo "torchrun two-node run failed (exit $STATUS); logs: $WORK/node0.log $WORK/node1.log" >&2
    tail -n 5 "$WORK/node0.log" "$WORK/node1.log" >&2
    exit "$STATUS"
fi
$PY -m neurofm.training.callbacks "$WORK/ranks/rank0.npz" "$WORK/ranks/rank1.npz" | tee "$WORK/compare.json"
$PY - "$WORK/compare.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
ok = c["books"] == 0.0 and c["weights"] == 0.0 and c["n_books"] > 0 and len(set(c["steps"])) == 1
print(f"two nodes, {c['n_books']} codebooks, steps {c['steps']}: max |rank0 - rank1| codebooks {c['books']:.3g}, "
      f"weights {c['weights']:.3g} -> {'IDENTICAL' if ok else 'DIFFERENT'}")
sys.exit(0 if ok else 1)
PYEOF

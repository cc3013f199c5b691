#!/bin/bash
# Runs scripts/slurm/pretrain.sbatch for real on a (local) SLURM cluster, 2 tasks of one CPU each, twice:
#   A: uninterrupted;  B: sent SIGUSR1 mid-run (Lightning saves a checkpoint and requeues the job; the
#   requeued job resumes with --ckpt_path last).  Then checks: codebooks and weights identical across the two
#   ranks of each run, and B's final weights equal to A's.
#
#   scripts/slurm/local-cluster.sh && scripts/slurm/requeue-check.sh [WORK=/tmp/neurofm-slurm] [STEPS=60]
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-/tmp/neurofm-slurm}
STEPS=${2:-60}
PY=${PYTHON:-python}
export PATH="$(dirname "$(command -v "$PY")"):$PATH" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ ! -f "$WORK/store/manifest.json" ]; then
    $PY -m neurofm.cli preprocess --dataset eegmat --root data/sample/eegmat --pipeline eeg-200hz \
        --out "$WORK/store" --no-report --quiet
fi
# Local stand-in for the cluster resources in the #SBATCH header: 1 node, 2 tasks, no GPUs.
LOCAL=(--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --mem=6G --time=00:30:00)
submit() {  # submit RUN_DIR → job id
    scripts/cluster/tiny-overlay.sh "$1" "$STEPS" > /dev/null
    sbatch --parsable "${LOCAL[@]}" --output="$1/slurm-%j.out" --chdir="$PWD" scripts/slurm/pretrain.sbatch \
        configs/pretrain/neurorvq-tiny.yaml "$WORK/store" --config "$1/tiny.yaml" --trainer.precision 32-true
}
wait_job() {  # wait until the job has left the queue for good
    while squeue -h -j "$1" 2>/dev/null | grep -q .; do sleep 2; done
}
rm -rf "$WORK/A" "$WORK/B"
A=$(submit "$WORK/A")
B=$(submit "$WORK/B")
echo "submitted A=$A (uninterrupted) and B=$B (SIGUSR1 mid-run)"
# B: once a few steps are checkpointed, send SIGUSR1 to its tasks (what SLURM does before the time limit).
until [ -f "$WORK/B/run/checkpoints/last.ckpt" ]; do sleep 1; done
sleep "${SIGNAL_AFTER:-3}"
scancel --signal=USR1 "$B"
echo "sent SIGUSR1 to job $B at $(date +%T)"
wait_job "$A"
wait_job "$B"
sacct_line() { scontrol show job "$1" 2>/dev/null | grep -oE "(JobState|Restarts)=[^ ]+" | tr '\n' ' '; }
echo "A: $(sacct_line "$A")"
echo "B: $(sacct_line "$B")"
ls "$WORK/B"/run/hpc_ckpt_*.ckpt > /dev/null 2>&1 && echo "B wrote $(ls "$WORK/B"/run/hpc_ckpt_*.ckpt)"
grep -h "resuming from the requeue checkpoint\|requeueing job\|Requeued SLURM job" "$WORK"/B/slurm-*.out | sort -u || true
$PY - "$WORK" <<'PYEOF'
import json, sys
from pathlib import Path
from neurofm.training.callbacks import compare
w = Path(sys.argv[1])
res = {"A ranks": compare([w / "A/ranks/rank0.npz", w / "A/ranks/rank1.npz"]),
       "B ranks": compare([w / "B/ranks/rank0.npz", w / "B/ranks/rank1.npz"]),
       "A vs B (rank 0)": compare([w / "A/ranks/rank0.npz", w / "B/ranks/rank0.npz"])}
(w / "requeue-check.json").write_text(json.dumps(res, indent=1))
ok = True
for name, c in res.items():
    same = c["books"] == 0.0 and c["weights"] == 0.0 and len(set(c["steps"])) == 1
    ok &= same
    print(f"{name:16s} steps {c['steps']}, {c['n_books']} codebooks: max |diff| codebooks {c['books']:.3g}, "
          f"weights {c['weights']:.3g} -> {'IDENTICAL' if same else 'DIFFERENT'}")
sys.exit(0 if ok else 1)
PYEOF

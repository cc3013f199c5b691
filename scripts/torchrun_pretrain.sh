#!/bin/bash
# Pretrain with torchrun (one process per GPU on this node; add --nnodes/--rdzv-* for several nodes).
# Lightning detects torchrun's environment (TorchElasticEnvironment); hardware stays in the trainer overlay.
#
#   scripts/torchrun_pretrain.sh 4 configs/pretrain/neurorvq-base.yaml /scratch/$USER/stores/eeg-200hz
#   scripts/torchrun_pretrain.sh 2 configs/pretrain/neurorvq-tiny.yaml out/eegmat-200hz --trainer.accelerator cpu
set -euo pipefail
NPROC=${1:?processes per node}
CONFIG=${2:?configs/pretrain/NAME.yaml}
STORE=${3:?store directory made by neurofm preprocess}
shift 3
exec torchrun --standalone --nproc-per-node "$NPROC" -m neurofm.cli pretrain --config "$CONFIG" \
    --trainer.strategy ddp --trainer.devices "$NPROC" --data.init_args.store "$STORE" --ckpt_path last "$@"

#!/bin/bash
# Pretrain with torchrun: NPROC processes on this node; several nodes rendezvous through c10d.
# Lightning detects torchrun's environment (TorchElasticEnvironment); hardware stays in the trainer overlay.
#
# One node:
#   scripts/torchrun_pretrain.sh 4 configs/pretrain/neurorvq-base.yaml /scratch/$USER/stores/eeg-200hz
# Several nodes: run the same command on every node with the same rendezvous endpoint and id:
#   NNODES=2 RDZV_ENDPOINT=node01:29400 RDZV_ID=job42 scripts/torchrun_pretrain.sh 4 CONFIG STORE [overrides]
# (scripts/cluster/torchrun-two-nodes.sh runs two one-process "nodes" on localhost.)
set -euo pipefail
NPROC=${1:?processes per node}
CONFIG=${2:?configs/pretrain/NAME.yaml}
STORE=${3:?store directory made by neurofm preprocess}
shift 3
NNODES=${NNODES:-1}
if [ "$NNODES" = 1 ]; then
    LAUNCH=(--standalone --nnodes 1)
else
    LAUNCH=(--nnodes "$NNODES" --rdzv-backend c10d --rdzv-endpoint "${RDZV_ENDPOINT:?host:port of the rendezvous}"
            --rdzv-id "${RDZV_ID:-neurofm}")
fi
exec torchrun "${LAUNCH[@]}" --nproc-per-node "$NPROC" -m neurofm.cli pretrain --config "$CONFIG" \
    --trainer.strategy ddp --trainer.devices "$NPROC" --trainer.num_nodes "$NNODES" \
    --data.init_args.store "$STORE" --ckpt_path last "$@"

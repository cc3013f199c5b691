#!/bin/bash
# Writes a tiny pretraining overlay (2-core CPU, seconds per step) for the cluster checks to $1.
#   scripts/cluster/tiny-overlay.sh WORK STEPS   → WORK/tiny.yaml
set -euo pipefail
WORK=${1:?work directory}
STEPS=${2:-8}
mkdir -p "$WORK"
cat > "$WORK/tiny.yaml" <<YAML
seed_everything: 0
model:
  class_path: neurofm.training.tokenizer.TokenizerModule
  init_args:
    model: neurorvq-tiny
    model_kwargs: {dim: 32, depth: 1, decoder_depth: 1, heads: 2, codebook_size: 16, code_dim: 8, n_levels: 2}
    max_chans: 19
    warmup_steps: 1
data:
  class_path: neurofm.data.datamodule.StoreDataModule
  init_args: {batch_size: 4, num_workers: 0, val_subjects: [], test_subjects: []}
trainer:
  accelerator: cpu
  deterministic: true
  max_steps: $STEPS
  max_epochs: 100
  limit_val_batches: 0
  log_every_n_steps: 1
  default_root_dir: $WORK/run
  logger: false
  enable_progress_bar: false
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {dirpath: $WORK/run/checkpoints, monitor: null, save_last: true, every_n_train_steps: 1, save_top_k: 0}
    - class_path: neurofm.training.callbacks.SaveCodebooks
      init_args: {dirpath: $WORK/ranks}
YAML
echo "$WORK/tiny.yaml"

"""Training: LightningModules, the LightningCLI behind ``neurofm pretrain``, export to safetensors."""

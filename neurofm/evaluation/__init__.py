"""Evaluation: metrics and result tables (decoders here; tokenizer and codec metrics in sibling modules)."""

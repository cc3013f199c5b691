"""Preprocessing: YAML recipes of named steps, run in parallel into a store."""

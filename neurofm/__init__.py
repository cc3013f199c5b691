"""neurofm: brain-signal foundation models — preprocessing, tokenizers, masked models, connectomes, decoders.

Importing ``neurofm`` is cheap: submodules (and torch) load on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

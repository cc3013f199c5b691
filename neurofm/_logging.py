"""Expected library chatter, summarised instead of printed line by line.

vector-quantize-pytorch logs (through loguru) one WARNING per codebook whose k-means init sees fewer vectors
than codes: "k-means init received N vectors for a codebook of K - duplicates will be sampled". On the first
forward of a multi-scale RVQ tokenizer that is one line per scale and level (~44 for ``neurorvq-tiny``), and it
is expected on any batch smaller than the codebook. :func:`summarise_kmeans_warnings` drops those lines and
counts them (:func:`kmeans_summary` gives one line); every other loguru message still reaches stderr.
"""

from __future__ import annotations

import sys

_COUNT = {"kmeans_small_init": 0, "installed": False}
_MESSAGE = "k-means init received"


def _filter(record) -> bool:
    if record["name"].startswith("vector_quantize_pytorch") and _MESSAGE in record["message"]:
        _COUNT["kmeans_small_init"] += 1
        return False
    return True


def summarise_kmeans_warnings() -> None:
    """Replace loguru's default stderr sink by one that drops (and counts) the k-means init warnings. Idempotent."""
    if _COUNT["installed"]:
        return
    try:
        from loguru import logger
    except ImportError:  # vector-quantize-pytorch without loguru: nothing to do
        return
    try:
        logger.remove(0)  # the default handler; absent if the application already configured loguru
    except ValueError:
        return
    logger.add(sys.stderr, filter=_filter, level="DEBUG")
    _COUNT["installed"] = True


def kmeans_summary() -> str:
    """One line about the silenced k-means warnings ('' if there were none)."""
    n = _COUNT["kmeans_small_init"]
    return (f"k-means init: {n} codebook(s) initialised from fewer vectors than codes (duplicates sampled; "
            "expected on small batches)") if n else ""

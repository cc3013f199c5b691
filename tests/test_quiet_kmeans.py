"""The first neurorvq forward prints no stack of k-means WARNING lines; they are counted in one summary."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

CODE = """
import torch
from neurofm.registry import create_model
from neurofm._logging import kmeans_summary
m = create_model("neurorvq-tiny"); m.train()
m(torch.randn(2, 4, 800))
print(kmeans_summary())
from loguru import logger
logger.warning("another warning")
"""


def test_kmeans_init_warnings_are_summarised():
    res = subprocess.run([sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "k-means init received" not in res.stderr  # was ~44 loguru lines on the first forward
    assert "codebook(s) initialised from fewer vectors than codes" in res.stdout
    n = int(res.stdout.split("k-means init: ")[1].split()[0])
    assert n >= 4
    assert "another warning" in res.stderr  # other loguru messages still reach stderr

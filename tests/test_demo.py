"""`make demo` fails with one clear line when the shipped pretrained tokenizer is missing (before any work)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_demo_without_weights_says_what_to_do(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "demo" / "run.py"), "--out", str(out),
                          "--weights", "no-such-tokenizer"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert "pretrained tokenizer 'no-such-tokenizer' is not installed" in res.stderr
    assert "HINT:" in res.stderr and "neurofm/weights/no-such-tokenizer" in res.stderr
    assert not out.exists()  # nothing half-made

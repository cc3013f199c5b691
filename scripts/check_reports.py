"""Open every HTML report under a folder in headless Chromium; fail on console errors or uncaught exceptions.

    python scripts/check_reports.py out/demo [--shots DIR]      (Debian: apt-get install chromium)

Each page is loaded from disk with JavaScript on (virtual time budget 5 s), its console messages are read from
Chromium's log, and a full-page screenshot is written to --shots for a look.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

CONSOLE = re.compile(r"INFO:CONSOLE[^\]]*\] \"(?P<msg>.*)\", source: (?P<src>\S*)")


def check(page: Path, shots: Path | None, browser: str) -> list[str]:
    args = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600",
            "--enable-logging=stderr", "--v=1", "--virtual-time-budget=5000"]
    if shots is not None:
        args.append(f"--screenshot={shots / (str(page).replace('/', '_') + '.png')}")
    res = subprocess.run([*args, page.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    problems = [f"{m['msg']} ({m['src']})" for m in CONSOLE.finditer(res.stderr)
                if "error" in m["msg"].lower() or "uncaught" in m["msg"].lower() or "failed" in m["msg"].lower()]
    if res.returncode:
        problems.append(f"chromium exit {res.returncode}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--shots", help="folder for screenshots")
    args = ap.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("check_reports: no chromium found. HINT: apt-get install chromium", file=sys.stderr)
        return 2
    shots = Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(Path(args.folder).rglob("*.html"))
    bad = 0
    for page in pages:
        problems = check(page, shots, browser)
        bad += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {page}" + "".join(f"\n     {p}" for p in problems))
    print(f"{len(pages)} page(s), {bad} with errors")
    return 1 if bad or not pages else 0


if __name__ == "__main__":
    sys.exit(main())

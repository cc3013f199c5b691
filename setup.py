"""Build step only (metadata lives in pyproject.toml): ship the repository's recipes and configs in the wheel.

``pipelines/`` and ``configs/`` stay at the top of the repository; at build time they are copied into
``neurofm/_data/`` inside the build tree, where ``neurofm._resources`` finds them with importlib.resources.
An editable install or a checkout uses the repository folders directly.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("pipelines", "configs")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "neurofm" / "_data"
        for folder in SHIPPED:
            src = here / folder
            if not src.is_dir():
                raise SystemExit(f"setup.py: {src} is missing; build from a checkout or an sdist that has it.")
            dst = target / folder
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})

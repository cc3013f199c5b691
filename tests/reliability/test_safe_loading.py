"""Safe loading, enforced on the package source: no call that can run code hidden in a file.

Weights load through safetensors (sha256 checked) and Lightning checkpoints through
``torch.load(weights_only=True)``; YAML through ``yaml.safe_load``; pickles only through the restricted
unpickler of :mod:`neurofm.datasets.speech`; files named in a manifest through ``inside()`` (no ``../``).
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "neurofm"
MANIFEST_FIELDS = {"file", "target_file", "path", "source"}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "<expr>")   # x().eval() is not eval()
    return ".".join(reversed(parts))


def _kw(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _manifest_key(node: ast.AST) -> str | None:
    """``rec["file"]`` or ``rec.get("file")`` → "file"."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        key = node.slice.value
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
          and node.args and isinstance(node.args[0], ast.Constant)):
        key = node.args[0].value
    else:
        return None
    return key if key in MANIFEST_FIELDS else None


def unsafe_calls(source: str, name: str = "<src>") -> list[str]:
    """Every forbidden construct in ``source`` as 'name:line: what'."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            fn = _dotted(node.func)
            last = fn.rsplit(".", 1)[-1]
            if fn in ("eval", "exec", "builtins.eval", "builtins.exec"):
                found.append(f"{where}: {fn}()")
            elif fn == "torch.load" or fn.endswith(".torch.load"):
                if not _is_true(_kw(node, "weights_only")):
                    found.append(f"{where}: torch.load without weights_only=True")
            elif fn in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "dill.loads", "joblib.load",
                        "pandas.read_pickle", "pd.read_pickle", "marshal.loads", "shelve.open", "pickle.Unpickler"):
                found.append(f"{where}: {fn}()")
            elif fn in ("yaml.load", "yaml.load_all"):
                loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
                if loader is None or _dotted(loader).rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                    found.append(f"{where}: {fn} without a safe Loader")
            elif fn in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
                found.append(f"{where}: {fn}()")
            elif last in ("load", "loadtxt", "genfromtxt") and fn.startswith(("np.", "numpy.")):
                if _is_true(_kw(node, "allow_pickle")):
                    found.append(f"{where}: {fn}(allow_pickle=True)")
            elif fn.startswith(("subprocess.", "os.system", "os.popen")):
                if fn in ("os.system", "os.popen") or _is_true(_kw(node, "shell")):
                    found.append(f"{where}: {fn} through a shell")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            key = _manifest_key(node.right)
            if key is not None:
                found.append(f"{where}: path joined with manifest field '{key}' without inside()")
    return found


def test_the_package_source_has_no_unsafe_loading():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problems += unsafe_calls(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("code", [
    "import torch\ntorch.load(p)",
    "import torch\ntorch.load(p, weights_only=False)",
    "import pickle\npickle.load(f)",
    "import pickle\npickle.loads(b)",
    "import yaml\nyaml.load(text)",
    "import yaml\nyaml.load(text, Loader=yaml.Loader)",
    "import yaml\nyaml.unsafe_load(text)",
    "eval(expr)",
    "exec(code)",
    "import numpy as np\nnp.load(p, allow_pickle=True)",
    "import subprocess\nsubprocess.run(cmd, shell=True)",
    "x = Path(store) / 'shards' / rec['target_file']",
    "x = root / rec.get('file')",
])
def test_the_checker_catches_each_forbidden_call(code):
    assert len(unsafe_calls(code)) == 1, code


@pytest.mark.parametrize("code", [
    "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
    "import yaml\nyaml.safe_load(text)",
    "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
    "import numpy as np\nnp.load(p, mmap_mode='r')",
    "model.eval()",
    "x = inside(root / 'shards', rec['file'])",
])
def test_the_checker_accepts_the_safe_forms(code):
    assert unsafe_calls(code) == []


def test_manifest_paths_that_escape_the_store_are_refused_everywhere(eegmat_store, tmp_path):
    """The store readers, and the task reader (regression targets), resolve manifest paths inside the store."""
    import json
    import shutil

    from neurofm._errors import StoreError
    from neurofm.data.dataset import WindowStore
    from neurofm.data.store import inside

    store = tmp_path / "store"
    shutil.copytree(eegmat_store, store)
    m = json.loads((store / "manifest.json").read_text())
    m["recordings"][1]["target_file"] = "../../../etc/passwd"
    (store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="escapes the store.*HINT"):
        WindowStore(store)
    for rel in ("../x.npy", "/etc/passwd", "a/../../x.npy"):
        with pytest.raises(StoreError, match="escapes the store"):
            inside(store / "shards", rel)
    assert inside(store / "shards", "sub-00_rest.npy") == (store / "shards" / "sub-00_rest.npy").resolve()

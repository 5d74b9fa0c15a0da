"""No pickle in the add-on or the training package: a weights file must never be able to run code.

An AST scan (docstrings that say "no torch.load" don't count; aliases like `t = self.torch` do)
for pickle-family imports, torch.load / torch.save (and torch.jit's), np.load(allow_pickle=...)
with anything but False, and the same through getattr / __import__. The scanner is tested on
snippets first, so a pass means it looked and found nothing, not that it can't see.
"""
from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("model", "training", "blender_motion_cvae", "__init__.py")
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
TORCH_IO = {"load", "save"}


def _dotted(node: ast.AST) -> list[str]:
    """`a.b.c` -> ['a', 'b', 'c']; [] for anything that isn't a plain dotted name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id] + parts[::-1] if isinstance(node, ast.Name) else []


def _aliases(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names that stand for the torch and numpy modules in this file."""
    torch, numpy = {"torch"}, {"np", "numpy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                for module, names in (("torch", torch), ("numpy", numpy)):
                    if a.name == module:
                        names.add(a.asname or module)
    changed = True
    while changed:  # t = torch; self.torch = torch; t = self.torch
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _dotted(node.value)[-1:] and _dotted(node.value)[-1] in torch:
                for target in node.targets:
                    name = _dotted(target)[-1:]
                    if name and name[0] not in torch:
                        torch.add(name[0])
                        changed = True
    return torch, numpy


def findings(source: str) -> list[str]:
    """What in this source could unpickle or pickle, one line each."""
    tree = ast.parse(source)
    torch, numpy = _aliases(tree)
    out = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            out += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLERS]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in PICKLERS or node.module.startswith("torch.serialization"):
                out.append(f"{line}: from {node.module} import ...")
            elif root == "torch" and any(a.name in TORCH_IO for a in node.names):
                out.append(f"{line}: from {node.module} import load/save")
            elif root == "numpy" and any(a.name == "load" for a in node.names):
                out.append(f"{line}: from numpy import load (unchecked allow_pickle)")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if len(name) >= 2 and name[-1] in TORCH_IO and (name[0] in torch or name[-2] in torch):
                out.append(f"{line}: {'.'.join(name)}()")
            if len(name) == 2 and name[0] in numpy and name[1] == "load":
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        out.append(f"{line}: {'.'.join(name)}(allow_pickle=...)")
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name == ["getattr"] and node.args and _dotted(node.args[0])[-1:] and \
                    _dotted(node.args[0])[-1] in torch and set(args) & TORCH_IO:
                out.append(f"{line}: getattr(torch, load/save)")
            if name[-1:] in (["__import__"], ["import_module"]) and set(a.split(".")[0] for a in args) & PICKLERS:
                out.append(f"{line}: dynamic import of {args[0]}")
    return out


BAD = {
    "import_pickle": "import pickle\npickle.loads(b'')",
    "from_pickle": "from pickle import loads",
    "cpickle_alias": "import _pickle as p",
    "joblib": "import joblib",
    "torch_load": "import torch\nstate = torch.load('w.pt')",
    "torch_save": "import torch\ntorch.save({}, 'w.pt')",
    "torch_alias": "import torch as th\nth.load('w.pt')",
    "attribute_alias": "class B:\n    def f(self):\n        t = self.torch\n        return t.load('w.pt')\n"
                       "    def __init__(self):\n        import torch\n        self.torch = torch",
    "jit_load": "import torch\ntorch.jit.load('m.pt')",
    "from_torch": "from torch import load",
    "serialization": "from torch.serialization import default_restore_location",
    "np_allow_pickle": "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "np_allow_pickle_variable": "import numpy as np\nnp.load('a.npy', allow_pickle=flag)",
    "getattr_torch": "import torch\ngetattr(torch, 'load')('w.pt')",
    "dunder_import": "__import__('pickle').loads(b'')",
    "import_module": "import importlib\nimportlib.import_module('dill')",
}
GOOD = {
    "docstring": '"""Weights are safetensors: no pickle, no torch.load."""',
    "np_load": "import numpy as np\nz = np.load('a.npz')\nnp.load('b.npy', allow_pickle=False)",
    "state_dict": "net.load_state_dict(state)\nfrom safetensors.numpy import load_file\nload_file('w')",
    "other_load": "import json\njson.load(f)",
}


@pytest.mark.parametrize("snippet", list(BAD))
def test_scanner_catches(snippet):
    assert findings(BAD[snippet]), f"the scanner missed {snippet}"


@pytest.mark.parametrize("snippet", list(GOOD))
def test_scanner_passes_safe_code(snippet):
    assert findings(GOOD[snippet]) == []


def _sources() -> list[str]:
    out = []
    for entry in SCANNED:
        path = os.path.join(ROOT, entry)
        if os.path.isfile(path):
            out.append(path)
        for folder, _, files in os.walk(path):
            out += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    return sorted(out)


def test_no_pickle_in_the_addon_or_training():
    sources = _sources()
    assert len(sources) > 20 and any(s.endswith("checkpoint.py") for s in sources)
    found = {}
    for path in sources:
        with open(path, encoding="utf-8") as f:
            hits = findings(f.read())
        if hits:
            found[os.path.relpath(path, ROOT)] = hits
    assert not found, f"pickle routes: {found}"

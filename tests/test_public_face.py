"""The public face: every name in ``beamlink.__all__`` resolves (lazily loaded ones too), the lazy
table and the static imports for type checkers name the same things, and importing ``beamlink``
alone does not load the node runtime."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import beamlink

INIT = Path(beamlink.__file__)


def test_every_exported_name_resolves() -> None:
    for name in beamlink.__all__:
        assert getattr(beamlink, name) is not None, name
    assert set(beamlink.__all__) <= set(dir(beamlink))


def test_lazy_table_matches_the_imports_for_type_checkers() -> None:
    tree = ast.parse(INIT.read_text())
    [guard] = [n for n in tree.body if isinstance(n, ast.If)]
    typed = {alias.name: node.module for node in guard.body if isinstance(node, ast.ImportFrom)
             for alias in node.names}
    assert typed == beamlink._LAZY


def test_importing_beamlink_does_not_load_the_node_runtime() -> None:
    probe = "import sys, beamlink; print(sorted(m for m in ('asyncio', 'beamlink.node') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.strip() == "[]"

"""The packages form floors: implementations/ (the model) below data_prep/ and pipelines/,
reports/ on top. A module never imports from a floor above its own, so the model can be
used, tested and vendored without the workflow around it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> the packages it must not import
FORBIDDEN = {
    "implementations": ("pipelines", "data_prep", "reports", "containers"),
    "data_prep": ("pipelines", "reports"),
    "pipelines": ("reports",),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_back_up(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    assert not bad, f"{package}/ imports from a floor above it: {bad}"

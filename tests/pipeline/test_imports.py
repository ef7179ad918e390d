"""The layering: pipeline/ is a library the service and the trainers use, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline

OUTSIDE = {"webapp", "worker", "training", "flask", "celery", "sqlalchemy"}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_pipeline_imports_nothing_of_the_service_or_the_trainers():
    sources = sorted(Path(pipeline.__file__).parent.rglob("*.py"))
    assert sources
    offending = {str(p): imported_packages(p) & OUTSIDE for p in sources if imported_packages(p) & OUTSIDE}
    assert offending == {}


def test_the_package_exports_no_name_that_shadows_a_module():
    """`from pipeline import translate` is always the module: the package has no attribute of that name."""
    modules = {p.stem for p in Path(pipeline.__file__).parent.glob("*.py")}
    assert not modules & set(pipeline.__all__)

"""The architecture's rules, checked on the source: the core never imports
Qt or the client, and only the store touches the database."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def test_core_imports_no_qt_and_no_client():
    offenders = {
        str(path.relative_to(REPO)): sorted(
            n
            for n in _imports(path)
            if n.split(".")[0] in ("PySide6", "qasync", "jivex_client", "PyQt5")
        )
        for path in _modules("jivex_core")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_only_the_store_uses_the_database():
    for path in _modules("jivex_core"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("jivex_core/store/"):
            continue
        assert not any(
            n.split(".")[0] in ("sqlalchemy", "alembic", "sqlite3")
            for n in _imports(path)
        ), rel


def test_client_does_not_import_the_store_or_services():
    for path in _modules("jivex_client"):
        for name in _imports(path):
            assert not name.startswith(
                ("jivex_core.store", "jivex_core.services", "jivex_core.engine")
            ), (path, name)

"""Pure code stays pure: nothing under mappings/ or jobs/plan/ imports an I/O layer."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("requests", "sqlalchemy", "socket", "http", "urllib", "connector.http", "connector.webitel.client",
             "connector.creatio.client", "jobs.state", "apscheduler", "subprocess")
PURE = sorted([*ROOT.glob("mappings/*.py"), *ROOT.glob("jobs/plan/*.py")])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_imports(path):
    bad = {name for name in imported_modules(path)
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_check_sees_the_files():
    assert len(PURE) >= 10 and "requests" in imported_modules(ROOT / "connector" / "http.py")

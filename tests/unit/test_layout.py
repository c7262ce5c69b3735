"""The layout holds: data flows one way through a run, pure code stays pure, the clients and the
sandbox know nothing of the engine, and lines stay within the configured length.

Imports are read with ``ast`` (relative ones resolved against the importing module), and purity
is checked over everything a pure module imports from the project, transitively: a pure module
that imports a project module which imports ``requests`` is not pure.
"""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "mappings", "jobs", "sandbox")
# The phases of one run, in data-flow order: a module may import its own phase or an earlier one.
PHASES = ("jobs.read", "jobs.plan", "jobs.apply", "jobs.sync", "jobs.commands")
IO = (
    "requests",
    "sqlalchemy",
    "socket",
    "http",
    "urllib.request",
    "apscheduler",
    "subprocess",
    "connector.http",
    "connector.retry",
    "connector.creatio.client",
    "connector.creatio.auth",
    "connector.creatio.batch",
    "connector.webitel.client",
    "connector.webitel.auth",
    "jobs.state",
    "jobs.wiring",
)
PURE = (
    "mappings",
    "jobs.plan",
    "jobs.read.snapshots",
    "connector.creatio.values",
    "connector.creatio.objects",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


@cache
def imports_of(name: str) -> frozenset[str]:
    """Every module ``name`` imports (absolute names; ``from x import y`` counts x and x.y)."""
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return frozenset(found)


def project_imports(name: str) -> set[str]:
    """The project modules ``name`` imports, plus the packages whose ``__init__`` runs on the way."""
    known = modules()
    out = set()
    for imported in imports_of(name):
        parts = imported.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if prefix in known and prefix != name:
                out.add(prefix)
    return out


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        for imported in project_imports(current):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def phase(name: str) -> int | None:
    return next((i for i, p in enumerate(PHASES) if within(name, p)), None)


def test_no_module_imports_a_later_phase():
    bad = []
    for name in modules():
        mine = phase(name)
        if mine is None:
            continue
        for imported in project_imports(name):
            theirs = phase(imported)
            if theirs is not None and theirs > mine:
                bad.append(f"{name} imports {imported}")
    assert not bad, bad


@pytest.mark.parametrize("package", ["connector", "sandbox"])
def test_clients_and_sandbox_know_nothing_of_the_engine(package):
    bad = [
        f"{name} imports {imported}"
        for name in modules()
        if within(name, package)
        for imported in imports_of(name)
        if within(imported, "mappings") or within(imported, "jobs")
    ]
    assert not bad, bad


def test_the_sandbox_imports_no_client():
    bad = [
        f"{name} imports {imported}"
        for name in modules()
        if within(name, "sandbox")
        for imported in imports_of(name)
        if within(imported, "connector")
    ]
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(n for n in modules() if any(within(n, p) for p in PURE)))
def test_pure_code_reaches_no_io(name):
    reached = {name, *closure(name)}
    bad = sorted(f"{m} imports {i}" for m in reached for i in imports_of(m) if any(within(i, f) for f in IO))
    assert not bad, bad


def test_the_checks_can_fail():
    # A relative import is resolved, a later phase is seen, and I/O is found through a chain.
    assert "jobs.plan.model" in project_imports("jobs.plan.users")
    assert phase("jobs.sync.cycle") > phase("jobs.apply.engine")
    assert any(
        within(i, "requests") for m in {"jobs.sync.cycle", *closure("jobs.sync.cycle")} for i in imports_of(m)
    )
    assert len([n for n in modules() if any(within(n, p) for p in PURE)]) >= 12


def test_lines_fit_the_configured_length():
    limit = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["line-length"]
    files = [p for folder in (*PACKAGES, "tests", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
    long = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in files
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > limit
    ]
    assert not long, f"{len(long)} lines over {limit} characters: {long[:20]}"

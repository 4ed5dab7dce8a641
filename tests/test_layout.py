"""The layout's rules, checked on the source: which top-level package may import which, and how
long a module may grow. A rule broken here fails CI, so a boundary never holds by habit alone."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python" / "cortex_client"

# package directory -> the top-level modules it must never import
FORBIDDEN_IMPORTS: dict[Path, frozenset[str]] = {
    # Adapters are usable without the gateway (plugins, the conformance suite).
    ROOT / "providers": frozenset({"app"}),
    # The client installs without the server's libraries.
    CLIENT: frozenset(
        {"app", "providers", "migrations", "starlette", "sqlalchemy", "asyncpg", "alembic"}
    ),
}

MAX_MODULE_LINES = 600


def python_files(directory: Path) -> Iterator[Path]:
    yield from sorted(path for path in directory.rglob("*.py") if "__pycache__" not in path.parts)


def imported_top_level_modules(source: str) -> Iterator[tuple[int, str]]:
    """(line, top-level name) for every absolute import, wherever it sits in the module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.partition(".")[0]


def forbidden_imports(directory: Path, forbidden: frozenset[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in python_files(directory)
        for line, name in imported_top_level_modules(path.read_text())
        if name in forbidden
    ]


@pytest.mark.parametrize(
    "directory", list(FORBIDDEN_IMPORTS), ids=lambda path: str(path.relative_to(ROOT))
)
def test_package_imports_only_what_its_layer_may(directory: Path) -> None:
    assert forbidden_imports(directory, FORBIDDEN_IMPORTS[directory]) == []


def test_the_import_check_sees_every_form_of_import() -> None:
    source = "import app\nfrom app.jobs import service\ndef f():\n    import providers.local\n"
    assert [name for _, name in imported_top_level_modules(source)] == [
        "app",
        "app",
        "providers",
    ]


def test_no_module_in_the_gateway_or_the_adapters_is_over_600_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for directory in (ROOT / "app", ROOT / "providers")
        for path in python_files(directory)
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_the_top_level_is_the_specified_layout() -> None:
    names = {path.name for path in ROOT.iterdir()}
    assert {"app", "providers", "migrations", "tests", "clients"} <= names
    assert {"pyproject.toml", "README.md", "docker-compose.yml"} <= names
    assert "cortex_gateway" not in names

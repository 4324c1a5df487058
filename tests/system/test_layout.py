"""The package's layout (DESIGN.md → The layers): imports run one way, downward; every module stays under
300 lines; the README's module table names every module in its folder, and nothing that is not one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ddim_lesson"
# A layer may import only from layers of lower rank. train and evaluate share a rank: neither imports the other.
RANK = {"core": 0, "nets": 1, "store": 2, "train": 3, "evaluate": 3, "course": 4, "cli": 5}
MAX_LINES = 300


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def layer_of(path: Path, pkg: Path = PKG) -> str | None:
    """The layer folder a module of ``pkg`` sits in; None for the top-level ``__init__`` and ``__main__``."""
    parts = path.relative_to(pkg).parts
    return parts[0] if len(parts) > 1 else None


def imported_layers(path: Path, pkg: Path = PKG) -> set[tuple[str, int]]:
    """(layer, line) of every ``ddim_lesson`` import in ``path``, relative or absolute, local ones included."""
    package = ["ddim_lesson", *path.relative_to(pkg).parts[:-1]]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names = [base + (node.module.split(".") if node.module else [])]
            if not node.module:  # "from .. import store": the names are the modules
                names = [base + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".") for a in node.names]
        else:
            continue
        for name in names:
            if name[0] == "ddim_lesson":
                out.add((name[1] if len(name) > 1 else "ddim_lesson", node.lineno))
    return out


def upward_imports(path: Path, pkg: Path = PKG) -> list[str]:
    """Each import of ``path`` (a module of the package folder ``pkg``) that does not go down the layers (or to a
    sibling of rank 0), as 'file:line -> layer'."""
    own = layer_of(path, pkg)
    if own is None:
        return []
    bad = []
    for target, line in sorted(imported_layers(path, pkg)):
        if target == own:
            continue
        if target not in RANK or RANK[target] >= RANK[own]:
            bad.append(f"{path.relative_to(pkg.parent)}:{line} -> {target}")
    return bad


def test_every_layer_folder_is_known() -> None:
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(RANK), folders ^ set(RANK)


def test_imports_run_downward() -> None:
    bad = [b for m in modules() for b in upward_imports(m)]
    assert not bad, "imports that do not run downward:\n" + "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """A planted upward import (core -> store, evaluate -> train) is found, relative or absolute; a downward one
    is not. The planted modules sit in a package folder under tmp_path, never in the package itself."""
    fake_pkg = tmp_path / "ddim_lesson"
    for layer, code, upward in (("core", "from ..store.pretrained import pretrained\n", True),
                                ("evaluate", "def f():\n    from ddim_lesson.train.loop import train\n", True),
                                ("evaluate", "from ..store import pretrained\nfrom . import records\n", False),
                                ("cli", "import ddim_lesson.course.env\n", False)):
        fake = fake_pkg / layer / "_planted_for_test.py"
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text(code)
        found = upward_imports(fake, fake_pkg)
        assert bool(found) == upward, (code, found)
        if upward:
            assert found[0].startswith(f"ddim_lesson/{layer}/_planted_for_test.py:")
    assert not list(PKG.rglob("_planted_for_test.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_module_is_at_most_300_lines(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_LINES})"


def readme_table() -> dict[str, set[str]]:
    """Folder -> the module names that the README's module table gives in its 'modules' column."""
    rows = re.findall(r"^\| `(\w+)/` \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.M)
    return {folder: set(re.findall(r"`(\w+)/?`", cell)) for folder, cell in rows}


def test_readme_module_table_matches_the_layout() -> None:
    table = readme_table()
    assert set(table) == set(RANK), set(table) ^ set(RANK)
    for folder, named in table.items():
        base = PKG / folder
        actual = {p.stem for p in base.rglob("*.py") if p.stem != "__init__"}
        actual |= {p.name for p in base.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
        assert named == actual, f"{folder}/: README lacks {sorted(actual - named)}, names {sorted(named - actual)}"


def fixtures_named_like_tests(source: str) -> list[str]:
    """Functions in ``source`` decorated as pytest fixtures whose name starts with ``test``: read as tests."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            for d in node.decorator_list:
                d = d.func if isinstance(d, ast.Call) else d
                if (d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "")) == "fixture":
                    out.append(node.name)
    return out


def test_no_fixture_is_named_like_a_test() -> None:
    found = {p.name: bad for p in sorted((ROOT / "tests").rglob("*.py"))
             if (bad := fixtures_named_like_tests(p.read_text()))}
    assert not found, found
    planted = "import pytest\n@pytest.fixture(scope='module')\ndef test_images():\n    return 1\n"
    assert fixtures_named_like_tests(planted) == ["test_images"]
    assert fixtures_named_like_tests(planted.replace("def test_images", "def images")) == []

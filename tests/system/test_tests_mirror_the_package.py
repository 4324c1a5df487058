"""tests/ mirrors the package (issue 20): a folder per layer plus faults/ and system/; every module of the
package is named by some test's code (imported, or its dotted path written out; a docstring that names a module
does not test it); each test in a layer's folder
touches that layer; no two test files share a basename (pytest's default import mode needs that)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ddim_lesson"
TESTS = ROOT / "tests"
LAYERS = ("core", "nets", "store", "train", "evaluate", "course", "cli")
EXTRA = ("faults", "system")  # the red team's faults and the whole-system tests (notebooks, packaging, layout)


def module_names(pkg: Path = PKG) -> dict[str, Path]:
    """Dotted name -> file of every module of the package folder ``pkg``; a package is named by its folder."""
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = [pkg.name, *path.relative_to(pkg).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def without_docstrings(source: str) -> str:
    """``source``'s code alone: its module, class and function docstrings (and its comments) left out."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value,
                                                                                                    str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def names_in(source: str, top: str = "ddim_lesson") -> set[str]:
    """Every dotted name under ``top`` that ``source``'s code imports or writes out: ``import a.b``, ``from a.b
    import c`` (gives a.b and a.b.c), ``from a import b as B``, strings such as
    ``"ddim_lesson.cli.commands.load_any"`` (monkeypatch targets), a module's path in a string of the code (a
    source file a test reads, ``"core/distill.py"``), and ``python -m``. Docstrings and comments name nothing: a
    test whose docstring says ``course/plotting/points.py`` tests that module only if its code touches it."""
    source = without_docstrings(source)
    out = set(re.findall(rf"\b{top}(?:\.\w+)+", source))
    layers = "|".join(LAYERS)
    out |= {f"{top}." + m.replace("/", ".") for m in re.findall(rf"(?<![\w/])((?:{layers})(?:/\w+)+)\.py\b", source)}
    if re.search(rf"""-m["',\s]+{top}\b""", source):
        out.add(f"{top}.__main__")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in out if n == top or n.startswith(top + ".")}


def is_named(module: str, names: set[str], modules: set[str]) -> bool:
    """``module`` is named by ``names`` if one of them is the module itself or an attribute of it (not one of
    its submodules: naming ``course.plotting.basins`` does not name the facade ``course.plotting``)."""
    for n in names:
        if n == module:
            return True
        if n.startswith(module + "."):
            first = module + "." + n[len(module) + 1:].split(".")[0]
            if first not in modules:
                return True
    return False


def files_under(tests: Path = TESTS) -> list[Path]:
    return sorted(p for p in tests.rglob("*.py") if "__pycache__" not in p.parts)


def holds_code(path: Path) -> bool:
    """False for a package ``__init__`` that is only a docstring (nets/: nothing there to test)."""
    body = ast.parse(path.read_text()).body
    return bool(body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                else body)


def unnamed_modules(pkg: Path = PKG, tests: Path = TESTS) -> list[str]:
    modules = module_names(pkg)
    names = set().union(*(names_in(p.read_text(), pkg.name) for p in files_under(tests)))
    return sorted(m for m, path in modules.items() if holds_code(path) and not is_named(m, names, set(modules)))


def layers_touched(source: str) -> set[str]:
    """The layers whose code ``source`` imports: directly (``ddim_lesson.core.x``), or through the top-level
    facade (``from ddim_lesson import ddim_sample`` touches the layer that defines ``ddim_sample``)."""
    import ddim_lesson

    out = set()
    for n in names_in(source):
        parts = n.split(".")
        if len(parts) > 1 and parts[1] in LAYERS:
            out.add(parts[1])
        elif len(parts) == 2 and hasattr(ddim_lesson, parts[1]):
            obj = getattr(ddim_lesson, parts[1])
            home = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
            if isinstance(home, str) and home.split(".")[1:2] and home.split(".")[1] in LAYERS:
                out.add(home.split(".")[1])
    return out


def misplaced(tests: Path = TESTS) -> list[str]:
    """Test files in a layer's folder that touch no code of that layer, as 'folder/file: touches [...]'."""
    bad = []
    for p in files_under(tests):
        rel = p.relative_to(tests)
        if len(rel.parts) == 2 and rel.parts[0] in LAYERS and p.name.startswith("test_"):
            touched = layers_touched(p.read_text())
            if rel.parts[0] not in touched:
                bad.append(f"{rel}: touches {sorted(touched)}")
    return bad


def test_tests_has_a_folder_per_layer_plus_faults_and_system():
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {*LAYERS, *EXTRA}, folders ^ {*LAYERS, *EXTRA}
    layers = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert layers == set(LAYERS), layers ^ set(LAYERS)
    loose = [p.name for p in TESTS.glob("test_*.py")]
    assert not loose, f"test files outside the layer folders: {loose}"
    for folder in (*LAYERS, *EXTRA):
        assert list((TESTS / folder).glob("test_*.py")), f"tests/{folder}/ holds no test file"


def test_no_two_test_files_share_a_basename():
    seen: dict[str, list[str]] = {}
    for p in files_under():
        seen.setdefault(p.name, []).append(str(p.relative_to(TESTS)))
    assert not {k: v for k, v in seen.items() if len(v) > 1}


def test_every_module_is_named_by_some_test():
    assert len(module_names()) >= 60
    assert not (missing := unnamed_modules()), f"modules no test names: {missing}"


def test_each_test_in_a_layer_folder_touches_that_layer():
    assert not (bad := misplaced()), "\n".join(bad)


def test_the_checks_catch_a_planted_unnamed_module_and_a_misplaced_test(tmp_path: Path):
    pkg = tmp_path / "ddim_lesson"
    for rel in ("__init__.py", "__main__.py", "core/__init__.py", "core/a.py", "core/b.py", "core/c.py",
                "course/plotting/__init__.py", "course/plotting/curves.py", "course/__init__.py", "nets/__init__.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("x = 1\n")
    (pkg / "nets/__init__.py").write_text('"""Only a docstring: nothing to test."""\n')
    tests = tmp_path / "tests"
    (tests / "core").mkdir(parents=True)
    (tests / "core" / "test_a.py").write_text(
        "import ddim_lesson\nfrom ddim_lesson.core import a\nfrom ddim_lesson.course.plotting.curves import f\n")
    assert unnamed_modules(pkg, tests) == ["ddim_lesson.__main__", "ddim_lesson.core.b", "ddim_lesson.core.c",
                                           "ddim_lesson.course", "ddim_lesson.course.plotting"]
    (tests / "core" / "test_b.py").write_text('"""core/c.py\'s tests."""\nX = "ddim_lesson.core.b.thing"\n'
                                              'RUN = ["python", "-m", "ddim_lesson", "info"]\n'
                                              'def test_c():\n    """Tests ddim_lesson.core.c."""  # core/c.py\n')
    (tests / "core" / "test_c.py").write_text("import ddim_lesson.course\n"
                                              "from ddim_lesson.course.plotting import curve_figure\n")
    assert unnamed_modules(pkg, tests) == ["ddim_lesson.core.c"]  # named in docstrings and a comment only
    (tests / "core" / "test_d.py").write_text('SOURCE = PKG / "core/c.py"\n')  # a test that reads its source
    assert unnamed_modules(pkg, tests) == []
    assert misplaced(tests) == ["core/test_c.py: touches ['course']"]
    (tests / "core" / "test_c.py").write_text("from ddim_lesson import ddim_sample\n")  # defined in core
    assert misplaced(tests) == []
    assert names_in('"""see notcore/x.py and core/samplers.pyc"""') == set()  # not module paths


@pytest.mark.parametrize("dotted", ["ddim_lesson.core.samplers", "ddim_lesson.course.plotting"])
def test_module_names_are_importable(dotted: str):
    assert dotted in module_names()
    importlib.import_module(dotted)

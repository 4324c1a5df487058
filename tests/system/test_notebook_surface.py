"""The notebooks' one import surface: ``import ddim_lesson as dl`` and ``from ddim_lesson.course import ...``.

Every name the course facade promises resolves to the object in its home module; the facade imports
nothing heavy until asked (``import ddim_lesson`` pulls in no ipywidgets); and the notebooks import the
package through those two paths only, so a learner never meets ``ddim_lesson.store.classifier_io``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ddim_lesson.course as course

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {"ddim_lesson", "ddim_lesson.course"}


@pytest.mark.parametrize("name", sorted(course.HOMES))
def test_every_facade_name_is_the_object_in_its_home(name: str) -> None:
    """The facade hands out the object itself, and the home HOMES names is where a function or class is defined
    (not a module that re-exports it), so a newcomer who follows HOMES reads the code."""
    home = importlib.import_module(f"ddim_lesson.{course.HOMES[name]}")
    obj = getattr(course, name)
    assert obj is getattr(home, name)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        assert obj.__module__ == home.__name__, f"{name} is defined in {obj.__module__}, HOMES says {home.__name__}"


def test_an_unknown_name_is_an_attribute_error_and_checkers_come_from_the_exercises() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        course.no_such_name  # noqa: B018
    with pytest.raises(AttributeError):
        course.check_no_such_exercise  # noqa: B018
    from ddim_lesson.course import exercises
    assert course.check_heun_step is exercises.check_heun_step


def test_importing_the_package_imports_no_widgets_or_plots() -> None:
    code = ("import sys, ddim_lesson, ddim_lesson.course; "
            "print(sorted(m for m in ('ipywidgets', 'matplotlib', 'IPython') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def notebook_import_paths() -> dict[str, set[str]]:
    """Module path -> the notebooks that import ``ddim_lesson`` through it."""
    paths: dict[str, set[str]] = {}
    for nb_path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(nb_path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            for mod in re.findall(r"^\s*from\s+(ddim_lesson[\w.]*)\s+import", src, re.M):
                paths.setdefault(mod, set()).add(nb_path.name)
            for mod in re.findall(r"^\s*import\s+(ddim_lesson[\w.]*)", src, re.M):
                paths.setdefault(mod, set()).add(nb_path.name)
    return paths


def test_notebooks_import_through_the_two_paths_only() -> None:
    paths = notebook_import_paths()
    assert paths, "no notebook imports ddim_lesson: the scan is broken"
    extra = {p: sorted(nbs) for p, nbs in paths.items() if p not in ALLOWED}
    assert not extra, f"notebooks import ddim_lesson through other paths: {extra}"


def test_the_scan_sees_a_deep_import() -> None:  # the check above can fail
    src = "import torch\nfrom ddim_lesson.store.data import toy_2d\n"
    assert re.findall(r"^\s*from\s+(ddim_lesson[\w.]*)\s+import", src, re.M) == ["ddim_lesson.store.data"]


def private_imports(root: Path) -> list[tuple[str, str, str]]:
    """(importing file, module, name) for every ``from X import _name`` inside the package."""
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                found += [(path.name, node.module or ".", a.name) for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_few_private_names_cross_a_module_boundary(tmp_path: Path) -> None:
    found = private_imports(ROOT / "ddim_lesson")
    assert len(found) <= 5, f"private names imported across modules: {found}"
    (tmp_path / "a.py").write_text("from .b import _hidden\n")  # the scan sees one when there is one
    assert private_imports(tmp_path) == [("a.py", "b", "_hidden")]

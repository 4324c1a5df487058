"""The project's set-up files agree with each other and with the course's card."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CARD_PACKAGES = {"jupyterlab", "torch", "torchvision", "matplotlib", "ipywidgets", "nbval"}
NOTEBOOKS = ["01_forward_process", "02_ddpm", "03_ddim_derivation", "04_eta_and_interpolation", "05_inversion",
             "06_solvers", "07_guidance", "08_editing"]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower()


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_card_packages_are_required(pyproject: dict) -> None:
    project = pyproject["project"]
    names = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    assert CARD_PACKAGES <= names, f"missing from pyproject: {CARD_PACKAGES - names}"


def test_torch_range_admits_the_local_release(pyproject: dict) -> None:
    """This workplace serves torch 2.14.1 and refuses newer ones: the range must admit 2.14.1."""
    from packaging.specifiers import SpecifierSet

    reqs = {_name(r): r for r in pyproject["project"]["dependencies"]}
    for name, version in (("torch", "2.14.1"), ("torchvision", "0.29.1")):
        spec = SpecifierSet(reqs[name][len(name):])
        assert version in spec, f"{reqs[name]} does not admit {version}"


def test_environment_yml_installs_the_same_thing(pyproject: dict) -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-e .[dev]" in pip, "environment.yml must install the package and its dev extras from pyproject"
    # conda pins a Python that pyproject admits, and adds no package that pyproject does not know about.
    from packaging.specifiers import SpecifierSet

    pinned = [d for d in conda if re.fullmatch(r"python=[\d.]+", d.split("#")[0].strip())]
    assert pinned, f"environment.yml must pin Python (python=X.Y), got {conda}"
    assert pinned[0].split("=")[1] + ".0" in SpecifierSet(pyproject["project"]["requires-python"])
    assert {_name(d) for d in conda} <= {"python", "pip"}


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test$", ci, re.M), ".ci/run must run exactly the README's test command"


def test_notebooks_exist_in_order_and_are_stripped() -> None:
    """Notebooks are stored without outputs: small repo, readable diffs. CI executes them."""
    found = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert found[: len(NOTEBOOKS)] == NOTEBOOKS
    for stem in found:
        nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
        assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", f"{stem}: kernelspec must be python3"
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{stem} cell {i} has saved outputs: strip them"
                assert cell.get("execution_count") is None, f"{stem} cell {i} has an execution count"


# A model a cell builds for study (the package's contract, model(x, t) -> eps) may be a lambda of exactly (x, t);
# any other function a notebook assigns or defines is a helper, and helpers belong in the package.
MODEL_PARAMS = ["x", "t"]


def _package_names() -> set[str]:
    """Every name the package's facades export: ``ddim_lesson`` and each layer's ``__all__`` (and course's HOMES)."""
    import importlib

    import ddim_lesson

    names = set(ddim_lesson.__all__)
    for layer in ("core", "nets", "store", "train", "evaluate", "course", "cli"):
        mod = importlib.import_module(f"ddim_lesson.{layer}")
        names |= set(getattr(mod, "__all__", ())) | set(getattr(mod, "HOMES", ()))
    return names


def notebook_definitions_breaking_the_rule(nb: dict, package: set[str]) -> list[str]:
    """Each def/class in a code cell of ``nb`` that is not a learner's exercise, and each lambda assigned to a name
    that is not a model of exactly (x, t) (``MODEL_PARAMS``): a helper written as a lambda is still a helper.

    An exercise is ``my_X`` or a stub ``X`` for an exercise X the registry knows (``exercises.SOLUTIONS``),
    with X's checker (``exercises.CHECKERS[X]``) called in the same cell or the next code cell.
    """
    import ast

    from ddim_lesson.course.exercises import CHECKERS, SOLUTIONS

    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    bad = []
    for i, src in enumerate(cells):
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError as e:
            bad.append(f"code cell {i}: not Python, so not checked ({e.msg})")
            continue
        after = src + "\n" + (cells[i + 1] if i + 1 < len(cells) else "")
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                params = [a.arg for a in node.value.args.args]
                if params != MODEL_PARAMS or node.value.args.vararg or node.value.args.kwarg:
                    names = ", ".join(ast.unparse(t) for t in node.targets)
                    bad.append(f"code cell {i}: {names} = lambda {', '.join(params)}: a helper written as a lambda "
                               f"(only a model lambda x, t: ... is not); compute it inline or import it")
                continue
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            name, exercise = node.name, node.name.removeprefix("my_")
            if exercise in SOLUTIONS:
                if not re.search(rf"\b{CHECKERS[exercise].__name__}\(", after):
                    bad.append(f"code cell {i}: exercise {name} without {CHECKERS[exercise].__name__}(...) after it")
            elif name.startswith("my_"):
                bad.append(f"code cell {i}: {name} is named like an exercise, but {exercise!r} is not one")
            elif name in package:
                bad.append(f"code cell {i}: {name} redefines the package's {name}")
            else:
                bad.append(f"code cell {i}: {name} is defined here; import it from ddim_lesson, or make it an exercise")
    return bad


def test_notebooks_import_rather_than_redefine_the_package() -> None:
    """Only exercises (`my_X`, or a registered stub X, each with its checker after it) define functions or classes,
    and a lambda assigned to a name is a model of (x, t): the notebooks define no helpers of their own."""
    package = _package_names()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        bad = notebook_definitions_breaking_the_rule(json.loads(path.read_text()), package)
        assert not bad, f"{path.name}:\n" + "\n".join(bad)


def test_the_notebook_rule_catches_planted_cells() -> None:
    """A planted helper (a def, or a lambda that is not a model of (x, t)), a stub without its checker, a package
    name redefined, a false my_: each is reported; a stub with its checker next, and a model lambda, are not."""
    package = _package_names()

    def nb(*sources: str) -> dict:
        return {"cells": [{"cell_type": "code", "source": s.splitlines(keepends=True)} for s in sources]}

    ok = nb("%matplotlib inline\ndef my_ddim_step(x_t, eps, abar_t, abar_prev):\n    ...",
            "check_ddim_step(my_ddim_step)", "def invert_step(x, eps, a, b):\n    ...\ncheck_invert_step(invert_step)",
            "frozen = lambda x, t: 0 * x  # a model the cell builds")
    assert notebook_definitions_breaking_the_rule(ok, package) == []
    planted = {
        "def helper(x):\n    return x": "helper is defined here",
        "def my_ddim_step(x_t, eps, abar_t, abar_prev):\n    ...": "without check_ddim_step(...) after it",
        "class ddim_sample:\n    pass": "redefines the package's ddim_sample",
        "def my_plot(x):\n    ...": "'plot' is not one",
        "def rms_spread(x):\n    ...": "redefines the package's rms_spread",  # notebook 11's helper, now the package's
        "def outer():\n    def inner():\n        ...": "inner is defined here",
        "x0_diff = lambda w: float(w.abs().max())": "x0_diff = lambda w: a helper written as a lambda",
        "f = g = lambda x, t, y: x": "f, g = lambda x, t, y: a helper",
        "fmt = lambda *xs: ', '.join(xs)": "fmt = lambda : a helper",
    }
    for cell, message in planted.items():
        bad = notebook_definitions_breaking_the_rule(nb(cell), package)
        assert any(message in b for b in bad), (cell, bad)
    real = json.loads((ROOT / "notebooks" / "03_ddim_derivation.ipynb").read_text())
    real["cells"].insert(len(real["cells"]) // 2, nb("def helper(x):\n    return x")["cells"][0])
    assert any("helper is defined here" in b for b in notebook_definitions_breaking_the_rule(real, package))

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

ROOT = Path(__file__).resolve().parents[1]
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


def test_notebooks_import_rather_than_redefine_the_package() -> None:
    """Only exercise cells (marked 'my_') may define functions; package names are never redefined."""
    import ddim_lesson

    public = set(ddim_lesson.__all__)
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            for name in re.findall(r"^\s*def (\w+)", "".join(cell["source"]), re.M):
                assert name not in public, f"{path.name} redefines ddim_lesson.{name}"

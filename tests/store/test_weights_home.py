"""One home for the shipped weights' folder (issue 20): ``store.pretrained.WEIGHTS_DIR``. The classifier's files
(``store.classifier_io.CLASSIFIER_WEIGHTS``), its shipped FID statistics and every shipped model resolve there,
and that folder holds the files; no other module builds a path to ``ddim_lesson/weights`` of its own."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import ddim_lesson
from ddim_lesson.evaluate import metrics
from ddim_lesson.store import classifier_io, pretrained
from ddim_lesson.store.classifier_io import CLASSIFIER_WEIGHTS, load_classifier
from ddim_lesson.store.pretrained import PRETRAINED, WEIGHTS_DIR, weights_path
from ddim_lesson.train import classifier_train

PKG = Path(ddim_lesson.__file__).resolve().parent
# A path to the weights folder built from a module's own location: Path(__file__).parents[1] / "weights", or
# .parent.parent / "weights"; the one allowed place is store/pretrained.py.
BUILDS_WEIGHTS_DIR = re.compile(r"__file__\)[^\n]*/\s*[\"']weights[\"']")
# The old second home, kept only while cli/classifier_script.py (another engineer's file) imports it from nets.
PENDING: dict[str, str] = {}  # file -> the module that still imports its WEIGHTS (none left)


def test_the_classifier_and_the_pretrained_models_share_one_folder_that_holds_the_shipped_files():
    assert CLASSIFIER_WEIGHTS.parent == WEIGHTS_DIR == PKG / "weights"
    assert metrics.SHIPPED_STATS.parent == WEIGHTS_DIR
    for suffix in (".safetensors", ".json"):
        assert (WEIGHTS_DIR / f"{CLASSIFIER_WEIGHTS.name}{suffix}").is_file()
        assert metrics.SHIPPED_STATS.with_name(metrics.SHIPPED_STATS.name + suffix).is_file()
        for name in PRETRAINED:
            assert weights_path(name).parent == WEIGHTS_DIR
            assert (WEIGHTS_DIR / f"{name}{suffix}").is_file(), f"{name}{suffix} is not in {WEIGHTS_DIR}"


def test_every_loader_of_the_classifier_defaults_to_the_one_path():
    for fn, arg in ((load_classifier, "path"), (metrics.classifier_and_sha, "path"),
                    (metrics.reference_stats, "classifier_path"), (classifier_train.train_classifier, "out")):
        assert inspect.signature(fn).parameters[arg].default == CLASSIFIER_WEIGHTS, fn.__qualname__
    model, meta = load_classifier()  # loads from that folder, and it is the classifier the FID uses
    assert meta["weights_sha256"] == metrics.classifier_and_sha()[1]
    assert model.head.out_features == meta["classifier"]["config"]["num_classes"]


def test_the_classifier_follows_the_folder_when_it_moves(tmp_path, monkeypatch):
    """CLASSIFIER_WEIGHTS is derived from WEIGHTS_DIR, not spelled out a second time (reloading the module with
    another WEIGHTS_DIR moves it); a second spelling would stay in the package folder."""
    import importlib

    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    try:
        moved = importlib.reload(classifier_io).CLASSIFIER_WEIGHTS
    finally:
        monkeypatch.undo()
        importlib.reload(classifier_io)
    assert moved == tmp_path / "classifier"


def sources_building_the_weights_dir(pkg: Path = PKG) -> set[str]:
    return {p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py") if BUILDS_WEIGHTS_DIR.search(p.read_text())}


def test_only_store_pretrained_builds_the_weights_folder():
    found = sources_building_the_weights_dir()
    assert "store/pretrained.py" in found  # the pattern does see the one home
    stale = {f for f, importer in PENDING.items() if f in found and "nets.classifier import WEIGHTS"
             not in (PKG / importer).read_text()}
    assert not stale, f"{stale}: nothing imports its WEIGHTS any more; delete it and its PENDING entry"
    assert found - {"store/pretrained.py"} - set(PENDING) == set(), "a second home of the weights folder"


def test_the_pattern_catches_a_planted_second_home(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "planted.py").write_text('W = Path(__file__).parents[1] / "weights" / "x"\n')
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "pretrained.py").write_text(inspect.getsource(pretrained))
    assert sources_building_the_weights_dir(tmp_path) == {"nets/planted.py", "store/pretrained.py"}


def test_no_module_but_the_pending_one_takes_the_classifier_path_from_nets():
    importers = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
                 if re.search(r"nets\.classifier import [^\n]*\bWEIGHTS\b", p.read_text())}
    assert importers <= set(PENDING.values()), importers

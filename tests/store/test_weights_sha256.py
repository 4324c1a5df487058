"""One hash of weights (issue 20): ``store.checkpoint_files.weights_sha256``. It equals hashlib over the bytes
safetensors writes for the tensors, the ``weights_sha256`` that ``save_checkpoint`` records, the checksum of every
shipped model and of the classifier, and a results file's ``model_sha256``; no other module hashes weights."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ddim_lesson
from ddim_lesson.evaluate.records import model_sha256
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser
from ddim_lesson.store.checkpoint_files import weights_sha256
from ddim_lesson.store.checkpoints import PAIR_FORMAT, load_checkpoint, save_checkpoint
from ddim_lesson.store.classifier_io import CLASSIFIER_WEIGHTS
from ddim_lesson.store.pretrained import PRETRAINED, WEIGHTS_DIR

PKG = Path(ddim_lesson.__file__).resolve().parent


def _mlp(seed: int = 0) -> MLPDenoiser:
    torch.manual_seed(seed)
    return MLPDenoiser(MLPConfig(hidden=16, depth=2))


def test_it_is_hashlib_over_the_safetensors_bytes_and_what_save_checkpoint_records(tmp_path):
    model = _mlp()
    tensors = model.state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_path / "plain.safetensors")  # independent writer
    reference = hashlib.sha256((tmp_path / "plain.safetensors").read_bytes()).hexdigest()
    assert weights_sha256(tensors) == reference
    save_checkpoint(tmp_path / "ck", tensors, {"note": "test"})
    assert json.loads((tmp_path / "ck.json").read_text())["weights_sha256"] == reference
    assert load_checkpoint(tmp_path / "ck")[1]["weights_sha256"] == reference
    assert model_sha256(model) == reference  # the results files' model hash is the same function


def test_it_tells_weights_apart_and_ignores_layout():
    a, b = _mlp(0).state_dict(), _mlp(1).state_dict()
    assert weights_sha256(a) != weights_sha256(b)
    w = torch.randn(4, 3)
    assert weights_sha256({"w": w.t()}) == weights_sha256({"w": w.t().contiguous()})  # a transposed view
    assert weights_sha256({"w": w}) != weights_sha256({"w": w.double()})  # the dtype is part of the weights
    planted = hashlib.sha256(json.dumps({k: v.tolist() for k, v in a.items()}).encode()).hexdigest()
    assert planted != weights_sha256(a)  # a hash of anything but the safetensors bytes is caught above


@pytest.mark.parametrize("name", [*PRETRAINED, CLASSIFIER_WEIGHTS.name])
def test_every_shipped_model_matches_its_recorded_checksum(name):
    path = WEIGHTS_DIR / name
    meta = json.loads(path.with_suffix(".json").read_text())
    tensors, _ = load_checkpoint(path)
    assert weights_sha256(tensors) == meta["weights_sha256"]
    if meta["format"] == PAIR_FORMAT:  # the file is the tensors alone (the newer format adds the JSON header)
        assert hashlib.sha256((WEIGHTS_DIR / f"{name}.safetensors").read_bytes()).hexdigest() == meta["weights_sha256"]


def test_no_other_module_hashes_weights():
    """``hashlib.sha256(st_save(...))`` (or model_sha256's old body) appears only in the one home."""
    pattern = re.compile(r"sha256\(\s*st_save\(|st_save\([^\n]*state_dict\(\)")
    found = {p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py") if pattern.search(p.read_text())}
    assert found == {"store/checkpoint_files.py"}, found
    assert pattern.search("blob = st_save({k: v for k, v in model.state_dict().items()})")  # a planted copy

"""Crafted checkpoints: each gets a clear CheckpointError, fast, with nothing allocated or waited on.

Every case builds a file an attacker (or a broken disk) could hand to ``load_model``: weights that
are NaN or not floating point, configs that ask for gigabytes, JSON nested 10,000 deep, a FIFO, a
link to /dev/zero, an 8 GB sparse file. The loader must refuse each with a CheckpointError that
names the problem, within a few seconds, and the CLI must print it as one line (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time

import pytest
import torch
from safetensors.torch import save as st_save

from ddim_lesson.cli.main import main
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser
from ddim_lesson.store.checkpoint_files import META_KEY
from ddim_lesson.store.checkpoints import (
    FORMAT,
    META_SHA_KEY,
    PAIR_FORMAT,
    CheckpointError,
    load_model,
    model_meta,
    save_checkpoint,
)

DEEP = "[" * 10_000 + "]" * 10_000


def _mlp(**cfg) -> MLPDenoiser:
    torch.manual_seed(0)
    return MLPDenoiser(MLPConfig(**{"hidden": 8, "depth": 1, "t_dim": 4, **cfg}))


def _meta(**over):
    meta = model_meta(_mlp(), NoiseSchedule.linear(100))
    for key, value in over.items():  # "model.config.hidden" -> meta["model"]["config"]["hidden"]
        *path, last = key.split(".")
        d = meta
        for p in path:
            d = d[p]
        d[last] = value
    return meta


def _save(path, tensors=None, **over):
    save_checkpoint(path, _mlp().state_dict() if tensors is None else tensors, _meta(**over))
    return path


def _with_weight(path, value=None, dtype=None):
    state = _mlp().state_dict()
    w = state["inp.weight"].clone()
    if value is not None:
        w[0, 0] = value
    state["inp.weight"] = w if dtype is None else w.to(dtype)
    save_checkpoint(path, state, _meta())
    return path


def _raw_meta(path, text):
    """A header whose metadata is ``text`` (with a valid checksum), so only the JSON itself is wrong."""
    header = {META_KEY: text, META_SHA_KEY: hashlib.sha256(text.encode()).hexdigest()}
    (path.parent / f"{path.name}.safetensors").write_bytes(st_save(_mlp().state_dict(), metadata=header))
    return path


def _pair(path, tensors=None, json_text=None):
    """The older format: plain safetensors plus NAME.json (checksum valid unless json_text is given)."""
    blob = st_save(_mlp().state_dict() if tensors is None else tensors)
    (path.parent / f"{path.name}.safetensors").write_bytes(blob)
    meta = {"format": PAIR_FORMAT, **_meta(), "weights_sha256": hashlib.sha256(blob).hexdigest()}
    (path.parent / f"{path.name}.json").write_text(json_text if json_text is not None else json.dumps(meta))
    return path


def _bytes(path, blob):
    (path.parent / f"{path.name}.safetensors").write_bytes(blob)
    return path


def _fifo(path):
    os.mkfifo(path.parent / f"{path.name}.safetensors")
    return path


def _pair_json_fifo(path):
    _pair(path)
    (path.parent / f"{path.name}.json").unlink()
    os.mkfifo(path.parent / f"{path.name}.json")
    return path


def _link(path, target):
    os.symlink(target, path.parent / f"{path.name}.safetensors")
    return path


def _sparse(path, size=8 << 30):
    with open(path.parent / f"{path.name}.safetensors", "wb") as f:
        f.truncate(size)  # no blocks on disk, 8 GB to a reader
    return path


def _folder(path):
    (path.parent / f"{path.name}.safetensors").mkdir()
    return path


def _no_sha(path):
    text = json.dumps({"format": FORMAT, **_meta()})
    return _raw_meta(path, text)


CASES = {  # name: (builder, phrase the error must contain)
    "NaN weight": (lambda p: _with_weight(p, float("nan")), "holds 1 non-finite values"),
    "inf weight": (lambda p: _with_weight(p, float("inf")), "non-finite values (NaN or inf)"),
    "NaN weight in a pair": (lambda p: _pair(p, {**_mlp().state_dict(), "inp.bias": torch.full((8,), float("nan"))}),
                             "holds 8 non-finite values"),
    "int32 weights": (lambda p: _with_weight(p, dtype=torch.int32), "has dtype 'I32'"),
    "int64 weights": (lambda p: _with_weight(p, dtype=torch.int64), "has dtype 'I64'"),
    "uint8 weights": (lambda p: _with_weight(p, dtype=torch.uint8), "has dtype 'U8'"),
    "complex weights": (lambda p: _with_weight(p, dtype=torch.complex64), "has dtype 'C64'"),
    "bool weights": (lambda p: _with_weight(p, dtype=torch.bool), "has dtype 'BOOL'"),
    "schedule T = 1e9": (lambda p: _save(p, **{"schedule.T": 10**9}), "T must be an integer in [1, 100000]"),
    "schedule T a string": (lambda p: _save(p, **{"schedule.T": "1000"}), "T must be an integer"),
    "schedule not an object": (lambda p: _save(p, schedule=[1, 2]), "schedule must be a JSON object"),
    "hidden = 1e6": (lambda p: _save(p, **{"model.config.hidden": 10**6}), "hidden must be an integer in [0, 65536]"),
    "hidden = 60000 (14 GB)": (lambda p: _save(p, **{"model.config.hidden": 60_000}),
                               "weights do not match the model config"),
    "depth = 1e6": (lambda p: _save(p, **{"model.config.depth": 10**6}), "depth must be an integer in [0, 256]"),
    "UNet base_channels = 1e6": (lambda p: _save(p, model={"type": "unet", "config": {"base_channels": 10**6}}),
                                 "base_channels must be an integer in [0, 65536]"),
    "UNet 100 levels": (lambda p: _save(p, model={"type": "unet", "config": {"channel_mults": [1] * 100}}),
                        "channel_mults must have at most 8 entries"),
    "UNet num_classes = 1e9": (lambda p: _save(p, model={"type": "unet", "config": {"num_classes": 10**9}}),
                               "num_classes must be an integer in [0, 65536]"),
    "config a list": (lambda p: _save(p, **{"model.config": [1, 2]}), "model config must be a JSON object"),
    "unknown model type": (lambda p: _save(p, **{"model.type": "transformer"}), "unknown model type 'transformer'"),
    "no model spec": (lambda p: _save(p, model=None), "no usable model spec"),
    "metadata nested 10,000 deep": (lambda p: _raw_meta(p, '{"format": "ddim_lesson/2", "x": ' + DEEP + "}"),
                                    "nests its JSON deeper than can be read"),
    "pair JSON nested 10,000 deep": (lambda p: _pair(p, json_text=DEEP), "nests its JSON deeper than can be read"),
    "header nested 10,000 deep": (lambda p: _bytes(p, len(b'{"x":' + DEEP.encode() + b"}").to_bytes(8, "little")
                                                   + b'{"x":' + DEEP.encode() + b"}"),
                                  "nests its JSON deeper than can be read"),
    "metadata not an object": (lambda p: _raw_meta(p, "[1, 2, 3]"), "holds metadata that is not a JSON object"),
    "metadata not JSON": (lambda p: _raw_meta(p, "{'format': 1"), "is not valid JSON"),
    "no weights checksum": (_no_sha, "do not match their checksum"),
    "weights of another run (pair)": (lambda p: _pair(p, json_text=json.dumps(
        {"format": PAIR_FORMAT, **_meta(), "weights_sha256": "0" * 64})), "checksum differs"),
    "a FIFO": (_fifo, "is not a regular file (it is a FIFO)"),
    "a FIFO as the pair JSON": (_pair_json_fifo, "is not a regular file (it is a FIFO)"),
    "a link to /dev/zero": (lambda p: _link(p, "/dev/zero"), "is not a regular file (it is a character device)"),
    "an 8 GB sparse file": (_sparse, "is 8.0 GiB, more than a checkpoint may be (4.0 GiB)"),
    "a folder": (_folder, "is not a regular file (it is a folder)"),
    "header length 2^63": (lambda p: _bytes(p, (1 << 63).to_bytes(8, "little") + b"{}"), "its header claims"),
    "header length 2^64 - 1": (lambda p: _bytes(p, b"\xff" * 8 + b"{}"), "truncated or not a safetensors file"),
    "empty file": (lambda p: _bytes(p, b""), "is truncated (0 bytes)"),
    "header not an object": (lambda p: _bytes(p, (2).to_bytes(8, "little") + b"[]"), "header is not a JSON object"),
}


@pytest.fixture
def alarm():
    """Fail, rather than hang, if a case blocks (the FIFO did, forever)."""
    if sys.platform == "win32":
        yield
        return

    def timeout(*_):
        raise TimeoutError("the loader blocked for 20 s")

    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_checkpoint_gets_a_clear_error(tmp_path, alarm, case):
    build, phrase = CASES[case]
    path = build(tmp_path / "m")
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert time.perf_counter() - t0 < 5, "the loader worked on a hostile file instead of refusing it"
    msg = str(err.value)
    assert phrase in msg, msg
    assert err.value.__cause__ is None and (err.value.__suppress_context__ or err.value.__context__ is None)


@pytest.mark.parametrize("case", list(CASES))
def test_the_cli_says_it_in_one_line(tmp_path, alarm, case, capsys):
    path = CASES[case][0](tmp_path / "m")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddim-lesson: error: ") and "Traceback" not in err[0], err


def test_integer_buffers_that_belong_there_still_load(tmp_path):
    """The noise generator's state (uint8) in a training checkpoint is not a weight: it loads."""
    model = _mlp()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v.clone() for k, v in model.state_dict().items()}
    tensors["rng.noise.0"] = torch.Generator().manual_seed(0).get_state()  # uint8
    save_checkpoint(tmp_path / "ck", tensors, _meta())
    loaded, _, _ = load_model(tmp_path / "ck")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_a_bounded_config_is_compared_before_it_is_allocated(tmp_path, monkeypatch):
    """hidden = 60000 would be 14 GB of weights: refused after a meta-device build, with no allocation."""
    import ddim_lesson.store.checkpoint_checks as checks

    built = []
    real = checks.build_model
    monkeypatch.setattr(checks, "build_model", lambda *a: built.append(str(torch.empty(0).device)) or real(*a))
    _save(tmp_path / "m", **{"model.config.hidden": 60_000})
    with pytest.raises(CheckpointError, match="with another shape"):
        load_model(tmp_path / "m")
    assert built == ["meta"]  # one build, on the meta device; the real one never happened

"""Checkpoints: exact round trips, atomic writes, and clear errors for bad files. Never unpickles."""

import hashlib
import json
import os
import pickle

import pytest
import torch

from ddim_lesson import checkpoints
from ddim_lesson.checkpoints import (
    FORMAT,
    CheckpointError,
    export_ema,
    load_checkpoint,
    load_model,
    model_meta,
    save_checkpoint,
    save_model,
)
from ddim_lesson.models import MLPConfig, MLPDenoiser, UNet, UNetConfig
from ddim_lesson.schedules import NoiseSchedule

TINY_UNET = UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2)


def _tiny_mlp(seed=0):
    torch.manual_seed(seed)
    return MLPDenoiser(MLPConfig(hidden=16, depth=1, t_dim=8))


def _assert_clear(err: pytest.ExceptionInfo, *phrases: str) -> None:
    """The message says what is wrong and what to do, and no internal exception is chained to it."""
    msg = str(err.value)
    for phrase in phrases:
        assert phrase in msg, f"{phrase!r} not in {msg!r}"
    assert err.value.__cause__ is None and (err.value.__suppress_context__ or err.value.__context__ is None)


@pytest.mark.parametrize("kind", ["unet", "mlp"])
def test_round_trip_is_exact(tmp_path, kind):
    model = UNet(TINY_UNET) if kind == "unet" else _tiny_mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # nothing zero-initialised left
    schedule = NoiseSchedule.cosine(200)
    path = save_model(tmp_path / "m", model, schedule, dataset="two-moons", steps=7)
    assert path == tmp_path / "m.safetensors" and (tmp_path / "m.json").exists()
    loaded, sched2, meta = load_model(tmp_path / "m")
    assert not loaded.training and type(loaded) is type(model)
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert torch.equal(sched2.betas, schedule.betas) and sched2.kind == "cosine"
    assert meta["dataset"] == "two-moons" and meta["steps"] == 7 and meta["format"] == FORMAT
    x = torch.randn(2, 1, 28, 28) if kind == "unet" else torch.randn(2, 2)
    t = torch.tensor([3, 150])
    assert torch.equal(model.eval()(x, t), loaded(x, t))
    for spelling in (tmp_path / "m.safetensors", tmp_path / "m.json", str(tmp_path / "m")):
        assert torch.equal(load_model(spelling)[0].state_dict()[next(iter(want))], want[next(iter(want))])


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_a_failing_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    save_model(tmp_path / "m", _tiny_mlp(0), NoiseSchedule.linear(100))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoints.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_model(tmp_path / "m", _tiny_mlp(1), NoiseSchedule.linear(100))
    monkeypatch.setattr(checkpoints.os, "replace", os.replace)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files, and no .tmp left
    load_model(tmp_path / "m")


def test_truncated_weights(tmp_path):
    st = save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100))
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "truncated", "m.safetensors", "copy both files again or retrain")


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"junk{suffix}").write_bytes(torch.randint(0, 256, (1000,), generator=g, dtype=torch.uint8)
                                                .numpy().tobytes())
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "junk")
    _assert_clear(err, "junk.json is not valid JSON", "retrain")


def test_json_without_the_format_marker(tmp_path):
    save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100))
    meta = json.loads((tmp_path / "m.json").read_text())
    del meta["format"]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "is not a ddim_lesson checkpoint", "ddim-lesson train")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "nothing")
    _assert_clear(err, "nothing.safetensors does not exist", "NAME.json beside it")


def test_config_that_does_not_match_the_weights(tmp_path):
    """Weights of a 16-wide MLP under a config that says 32 wide (and a valid checksum)."""
    model = _tiny_mlp()
    meta = model_meta(MLPDenoiser(MLPConfig(hidden=32, depth=1, t_dim=8)), NoiseSchedule.linear(100))
    save_checkpoint(tmp_path / "m", model.state_dict(), meta)
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "weights do not match the model config", "with another shape", "retrain")


def test_a_bad_model_config(tmp_path):
    meta = {"model": {"type": "unet", "config": {"image_size": 64}}, "schedule": NoiseSchedule.linear(10).to_dict()}
    save_checkpoint(tmp_path / "m", {}, meta)
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "image_size must be 28 or 32, got 64", "retrain")


def test_a_pickle_is_never_unpickled(tmp_path, monkeypatch):
    """A torch.save pickle renamed to .safetensors, even with a JSON whose checksum matches it."""
    torch.save(_tiny_mlp().state_dict(), tmp_path / "m.safetensors")
    blob = (tmp_path / "m.safetensors").read_bytes()
    meta = {"format": FORMAT, **model_meta(_tiny_mlp(), NoiseSchedule.linear(100)),
            "weights_sha256": hashlib.sha256(blob).hexdigest()}
    (tmp_path / "m.json").write_text(json.dumps(meta))

    def forbidden(*args, **kwargs):
        raise AssertionError("the loader tried to unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "is not a readable safetensors file", "retrain")


def _training_checkpoint(path):
    """A checkpoint laid out as train.py writes it: raw weights, EMA weights and optimizer state."""
    raw, ema = _tiny_mlp(0), _tiny_mlp(1)
    tensors = {f"model.{k}": v for k, v in raw.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    tensors["opt.0.step"] = torch.tensor(3.0)
    meta = {**model_meta(raw, NoiseSchedule.linear(100)), "steps": 3, "losses": [1.0, 0.9, 0.8],
            "opt_groups": [{"lr": 1e-3}], "dataset": "two-moons"}
    save_checkpoint(path, tensors, meta)
    return raw, ema


def test_training_checkpoint_loads_and_exports_its_ema_weights(tmp_path):
    _, ema = _training_checkpoint(tmp_path / "run" / "checkpoint")
    for source in (tmp_path / "run" / "checkpoint", tmp_path / "run"):  # a run folder finds checkpoint.*
        model, _, meta = load_model(source)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ema.state_dict().values()))
    out = export_ema(tmp_path / "run" / "checkpoint", tmp_path / "shipped", note="x")
    tensors, meta = load_checkpoint(out)
    assert set(tensors) == set(ema.state_dict())  # no optimizer state, no raw weights
    assert "losses" not in meta and meta["loss_history"] == [0.9] and meta["note"] == "x"
    model, _, _ = load_model(tmp_path / "shipped")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ema.state_dict().values()))
    with pytest.raises(CheckpointError, match="holds no EMA weights"):
        export_ema(tmp_path / "shipped", tmp_path / "again")


def test_written_files_get_the_usual_permissions(tmp_path):
    """mkstemp creates 0600 files; a shipped or shared checkpoint must be readable by others (umask 022)."""
    import os
    import stat

    import torch

    from ddim_lesson.checkpoints import save_checkpoint

    old = os.umask(0o022)
    try:
        st = save_checkpoint(tmp_path / "ck", {"w": torch.zeros(2)}, {})
    finally:
        os.umask(old)
    for p in (st, st.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644

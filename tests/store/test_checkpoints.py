"""Checkpoints: exact round trips, one atomic file, the previous checkpoint as a fallback, the older
pair format, and clear errors for bad files. Never unpickles. (Crafted files: test_checkpoint_faults.py.)"""

import hashlib
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save as st_save

from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.nets.models import MLPConfig, MLPDenoiser, UNet, UNetConfig
from ddim_lesson.store import atomic
from ddim_lesson.store.checkpoints import (
    FORMAT,
    PAIR_FORMAT,
    CheckpointError,
    CheckpointWarning,
    export_ema,
    load_checkpoint,
    load_model,
    load_newest,
    model_meta,
    read_checkpoint,
    save_checkpoint,
    save_model,
)
from ddim_lesson.store.pretrained import WEIGHTS_DIR

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


def _write_pair(path, tensors, meta):
    """A checkpoint in the older format: NAME.safetensors without metadata, NAME.json beside it."""
    blob = st_save(tensors)
    path.with_suffix(".safetensors").write_bytes(blob)
    meta = {"format": PAIR_FORMAT, **meta, "weights_sha256": hashlib.sha256(blob).hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(meta))


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_one_file_holds_weights_and_metadata_and_the_json_is_only_a_copy(tmp_path):
    """The loader trusts the header: losing or editing the readable JSON copy changes nothing."""
    save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100), dataset="two-moons")
    (tmp_path / "m.json").write_text(json.dumps({"format": "something else"}))
    assert load_model(tmp_path / "m")[2]["dataset"] == "two-moons"
    (tmp_path / "m.json").unlink()
    assert load_model(tmp_path / "m")[2]["dataset"] == "two-moons"


@pytest.mark.parametrize("fail_at", ["write", "replace"])
def test_a_failing_write_leaves_the_old_file_intact(tmp_path, monkeypatch, fail_at):
    """A disk that fills up half way through the data, or a rename that fails: the old file stays."""
    save_model(tmp_path / "m", _tiny_mlp(0), NoiseSchedule.linear(100))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device (simulated)")

    if fail_at == "write":
        monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError):
        save_model(tmp_path / "m", _tiny_mlp(1), NoiseSchedule.linear(100))
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files, and no .tmp left
    load_model(tmp_path / "m")


def test_the_previous_checkpoint_is_kept_and_used_when_the_newest_is_damaged(tmp_path):
    path = tmp_path / "checkpoint"
    save_checkpoint(path, {"w": torch.zeros(3)}, {"steps": 1}, keep_previous=True)
    assert not (tmp_path / "checkpoint.prev.safetensors").exists()  # nothing to keep yet
    save_checkpoint(path, {"w": torch.ones(3)}, {"steps": 2}, keep_previous=True)
    assert read_checkpoint(tmp_path / "checkpoint.prev")[1]["steps"] == 1
    loaded = load_newest(path)
    assert loaded.meta["steps"] == 2 and not loaded.skipped and loaded.note().endswith("(step 2)")
    st = tmp_path / "checkpoint.safetensors"
    st.write_bytes(st.read_bytes()[:-5])  # the newest one damaged
    loaded = load_newest(path)
    assert loaded.meta["steps"] == 1 and loaded.path.name == "checkpoint.prev.safetensors"
    assert loaded.note().startswith("the previous checkpoint ") and "(step 1), because " in loaded.note()
    assert "checkpoint.safetensors is truncated" in loaded.note()
    with pytest.warns(CheckpointWarning, match="using the previous checkpoint .*checkpoint.prev.safetensors"):
        tensors, meta = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.zeros(3))
    st.unlink()  # killed between the two renames: only the previous one is there
    assert load_newest(path).meta["steps"] == 1


def test_the_older_pair_format_still_loads_and_the_shipped_checksums_are_unchanged(tmp_path):
    raw = (WEIGHTS_DIR / "two-moons.safetensors").read_bytes()
    tensors, meta = load_checkpoint(WEIGHTS_DIR / "two-moons")
    assert meta["format"] == PAIR_FORMAT and meta["weights_sha256"] == hashlib.sha256(raw).hexdigest()
    model = _tiny_mlp()
    _write_pair(tmp_path / "old", model.state_dict(), model_meta(model, NoiseSchedule.linear(100)))
    loaded = load_model(tmp_path / "old")[0]
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    # a new checkpoint records the same checksum as the pair would: SHA-256 of the plain safetensors bytes
    save_model(tmp_path / "new", model, NoiseSchedule.linear(100))
    assert read_checkpoint(tmp_path / "new")[1]["weights_sha256"] == json.loads(
        (tmp_path / "old.json").read_text())["weights_sha256"]


def test_truncated_weights(tmp_path):
    st = save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100))
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "truncated", "m.safetensors", "copy it again or retrain")


@pytest.mark.parametrize("where", ["data", "metadata"])
def test_a_flipped_byte_is_caught(tmp_path, where):
    st = save_model(tmp_path / "m", _tiny_mlp(), NoiseSchedule.linear(100), dataset="two-moons")
    blob = bytearray(st.read_bytes())
    i = len(blob) - 7 if where == "data" else blob.index(b"two-moons")
    blob[i] ^= 0x01
    st.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "do not match their checksum" if where == "data" else "does not match its checksum",
                  "corrupted")


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    g = torch.Generator().manual_seed(0)
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"junk{suffix}").write_bytes(torch.randint(0, 256, (1000,), generator=g, dtype=torch.uint8)
                                                .numpy().tobytes())
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "junk")
    _assert_clear(err, "junk.safetensors is truncated or not a safetensors file", "retrain")


def test_a_pair_json_without_the_format_marker(tmp_path):
    model = _tiny_mlp()
    _write_pair(tmp_path / "m", model.state_dict(), model_meta(model, NoiseSchedule.linear(100)))
    meta = json.loads((tmp_path / "m.json").read_text())
    del meta["format"]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "is not a ddim_lesson checkpoint", "ddim-lesson train")


def test_a_pair_without_its_json(tmp_path):
    model = _tiny_mlp()
    _write_pair(tmp_path / "m", model.state_dict(), model_meta(model, NoiseSchedule.linear(100)))
    (tmp_path / "m.json").unlink()
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "m")
    _assert_clear(err, "m.json does not exist", "copy both files together")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "nothing")
    _assert_clear(err, "nothing.safetensors does not exist", "a run folder")


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
    _assert_clear(err, "truncated or not a safetensors file", "retrain")


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

    from ddim_lesson.store.checkpoints import save_checkpoint

    old = os.umask(0o022)
    try:
        st = save_checkpoint(tmp_path / "ck", {"w": torch.zeros(2)}, {})
    finally:
        os.umask(old)
    for p in (st, st.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644

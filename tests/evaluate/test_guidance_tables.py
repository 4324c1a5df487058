"""evaluate.guidance_tables (the tables of notebooks 07 and 08): end to end on a tiny random class-conditional UNet
with tiny counts: every part measured, the model calls counted against their closed form, resume (a second run computes
nothing), the resume key (other counts or other weights are refused, not mixed), the Markdown's scale and
w = scale − 1 (checked against Ho & Salimans' formula on the model), the committed record, and bad values."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import CountedNet

from ddim_lesson.core.guidance import cfg
from ddim_lesson.core.schedules import NoiseSchedule
from ddim_lesson.evaluate import guidance_tables as gt
from ddim_lesson.evaluate.guidance_eval import class_samples, quality, roundtrip_mse
from ddim_lesson.evaluate.metrics import reference_stats
from ddim_lesson.evaluate.records import model_sha256
from ddim_lesson.nets.models import UNet, UNetConfig

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
SCHEDULE = NoiseSchedule.linear(T=1000)


@pytest.fixture(scope="module", autouse=True)
def small_inversion_grid():
    """The error-against-calls grid of the inversion part, small (the committed one makes 2180 calls)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gt, "PLAIN_STEPS", (2, 4))
        mp.setattr(gt, "FP_STEPS", 2)
        mp.setattr(gt, "FP_ITERS", (1,))
        yield


def tiny_cond(seed: int = 0) -> CountedNet:
    """A random 10-class UNet on 28×28 images (the classifier's classes and size); the zero-initialised output layer
    and label embedding are moved off zero, so that labels and scales change the output."""
    torch.manual_seed(seed)
    net = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), groups=4, attn_heads=2, num_classes=10))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return CountedNet(net.eval())


def small(out: Path, **kw) -> gt.GuidanceConfig:
    base = dict(model="tiny", scales=(0.0, 3.0), seeds=(0,), n_per_class=2, steps=2, strengths=(0.5, 1.0),
                edit_scales=(1.0,), invert_scales=(0.0,), n_edit=2, n_invert=10, out=str(out))
    return gt.GuidanceConfig(**{**base, **kw})


def expected_calls(c: gt.GuidanceConfig) -> int:
    """Model calls of a fresh run, from the definitions: one guided call = one forward (of 2B)."""
    tradeoff = len(c.seeds) * len(c.scales) * 10 * c.steps  # every class, every step
    sdedit = sum(max(1, round(c.steps * s)) for s in c.strengths)  # SDEdit walks round(S·strength) steps
    sdedit += c.steps + len(c.invert_scales) * c.steps  # one unlabelled inversion, one decode per scale
    edit = len(gt.ge.EDIT_PAIRS) * len(c.edit_scales) * 3 * c.steps  # invert, decode the edit, decode a fresh one
    cells = [(c.steps, k) for _ in c.scales for k in (0, 3)] + [(S, 0) for S in gt.PLAIN_STEPS] * 2  # scales 1, 3
    cells += [(gt.FP_STEPS, k) for k in gt.FP_ITERS] * 2
    inversion = sum(S * (1 + k) + S for S, k in cells)  # S(1 + k) to invert with k fixed-point iterations, S back
    return tradeoff + sdedit + edit + inversion


class Bar:
    """Stands in for generate.progress_bar: records each bar's total and what it was moved by."""

    made: list[Bar] = []

    def __init__(self, total: int, desc: str, progress: bool = True) -> None:
        self.total, self.desc, self.moved = total, desc, 0
        Bar.made.append(self)

    def update(self, n: int) -> None:
        self.moved += n

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[CountedNet, gt.GuidanceConfig, dict]:
    """One run of every part; ``out`` has a dot in its name (Path.with_suffix would cut ".small" off)."""
    model = tiny_cond()
    config = small(tmp_path_factory.mktemp("guidance") / "g.small")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gt, "progress_bar", Bar)
        res = gt.run_guidance(config, model=model, schedule=SCHEDULE, progress=False)
    return model, config, res


def files(out: str) -> dict[str, bytes]:
    folder = Path(out).parent
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# -- a run, its model calls, and resume -----------------------------------------------------------------------------
def test_every_part_runs_with_the_calls_its_definition_gives_and_a_second_run_computes_nothing(measured) -> None:
    model, config, res = measured
    assert model.calls == expected_calls(config) == 40 + 7 + 24 + (28 + 24 + 12)
    assert [b.moved for b in Bar.made] == [b.total for b in Bar.made] and sum(b.total for b in Bar.made) == model.calls
    assert set(files(config.out)) == {"g.small.json", "g.small.md"}  # not g.json: the suffix is appended
    assert set(res["tradeoff"]) == {"real", "seed=0 scale=0.0", "seed=0 scale=3.0"}
    assert set(res["sdedit"]) == {"input", "strength=0.5", "strength=1.0", "invert scale=0.0"}
    assert [r["steps"] for k, r in res["sdedit"].items() if k.startswith("strength")] == [1, 2]
    assert len(res["edit"]) == 4 and len(res["inversion"]) == 4 + 4 + 2
    assert res["resume_key"] == {"model_sha256": model_sha256(model), "classifier_sha256": gt.classifier_and_sha()[1],
                                 "n_per_class": 2, "steps": 2, "n_edit": 2, "n_invert": 10}
    before = files(config.out)
    model.reset()
    again = gt.run_guidance(config, model=model, schedule=SCHEDULE, progress=False)
    assert model.calls == 0 and files(config.out) == before  # nothing computed, nothing rewritten
    assert {p: again[p] for p in gt.PARTS} == {p: res[p] for p in gt.PARTS}


def test_a_new_scale_computes_only_its_cells(measured, tmp_path: Path) -> None:
    _, config, _ = measured
    for name in ("g.small.json", "g.small.md"):
        shutil.copy(Path(config.out).parent / name, tmp_path / name)
    model = tiny_cond()
    res = gt.run_guidance(small(tmp_path / "g.small", parts=("tradeoff",), scales=(0.0, 3.0, 1.0)), model=model,
                          schedule=SCHEDULE, progress=False)
    assert model.calls == 10 * 2 and "seed=0 scale=1.0" in res["tradeoff"]  # one new cell: 10 classes, 2 steps
    assert list(res["config"]["scales"]) == [0.0, 3.0, 1.0]


def test_each_cell_is_measured_at_its_scale_not_at_w(measured) -> None:
    """Recomputed independently: the row "scale=3.0" is the model guided at scale 3 (a loop that passed w = scale − 1,
    or read the row off by one, would store the numbers of scale 2)."""
    model, config, res = measured
    ref = reference_stats("test")
    at = {s: quality(*class_samples(model, SCHEDULE, s, config.n_per_class, config.steps, seed=0), ref)
          for s in (2.0, 3.0)}
    cell = res["tradeoff"]["seed=0 scale=3.0"]
    assert {k: cell[k] for k in at[3.0]} == at[3.0] and cell["scale"] == 3.0
    assert at[2.0]["fid"] != at[3.0]["fid"]  # the planted off-by-one would show
    row = res["inversion"]["scale scale=3.0 S=2 k=0"]
    x0, y0 = gt.per_class(*gt.load_images("fashion-mnist", train=False, with_labels=True), 1)
    assert row["mse"] == roundtrip_mse(cfg(model, y0, 3.0), SCHEDULE, x0, 2, 0)
    assert row["mse"] != roundtrip_mse(cfg(model, y0, 2.0), SCHEDULE, x0, 2, 0)


# -- the resume key: other counts or other weights are refused before anything is measured --------------------------
@pytest.mark.parametrize(("change", "match"), [
    ({"n_per_class": 3}, r"n_per_class 3 \(the file has 2\)"), ({"steps": 3}, r"steps 3 \(the file has 2\)"),
    ({"n_edit": 5}, r"n_edit 5"), ({"n_invert": 20, "parts": ("tradeoff",)}, r"n_invert 20"),
])  # fmt: skip
def test_other_counts_are_refused_not_mixed(measured, monkeypatch, change: dict, match: str) -> None:
    _, config, _ = measured
    before = files(config.out)
    monkeypatch.setattr(gt, "load_any", lambda *a, **k: pytest.fail("loaded a model before the settings check"))
    with pytest.raises(ValueError, match=match):
        gt.run_guidance(small(Path(config.out), **change), progress=False)
    assert files(config.out) == before


def test_other_weights_are_refused(measured, monkeypatch) -> None:
    _, config, _ = measured
    before = files(config.out)
    with pytest.raises(ValueError, match="model_sha256"):
        gt.run_guidance(config, model=tiny_cond(seed=1), schedule=SCHEDULE, progress=False)
    clf, _ = gt.classifier_and_sha()
    monkeypatch.setattr(gt, "classifier_and_sha", lambda: (clf, "0" * 64))  # another classifier's features
    with pytest.raises(ValueError, match="classifier_sha256"):
        gt.run_guidance(config, model=tiny_cond(), schedule=SCHEDULE, progress=False)
    assert files(config.out) == before


def test_without_n_per_class_in_the_key_the_cells_would_mix(measured, monkeypatch, tmp_path: Path) -> None:
    """Planted bug: drop n_per_class from the key and the same command adds a row at 3 per class beside rows at 2."""
    _, config, _ = measured
    for name in ("g.small.json", "g.small.md"):
        shutil.copy(Path(config.out).parent / name, tmp_path / name)
    monkeypatch.setattr(gt, "KEY_FIELDS", ("steps", "n_edit", "n_invert"))
    res = gt.run_guidance(small(tmp_path / "g.small", parts=("tradeoff",), seeds=(1,), scales=(0.0,), n_per_class=3),
                          model=tiny_cond(), schedule=SCHEDULE, progress=False)
    assert "seed=1 scale=0.0" in res["tradeoff"] and "seed=0 scale=0.0" in res["tradeoff"]  # mixed: 30 and 20 images


# -- the Markdown: the scale, and w = scale − 1 -----------------------------------------------------------------------
def scale_and_w(md: str) -> list[tuple[float, float]]:
    """(scale, w) of every row of every table whose header has a "w = scale − 1" column right after "scale"."""
    rows, in_table = [], False
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if cells[:2] == ["scale", "w = scale − 1"]:
            in_table = True
        elif not cells:
            in_table = False
        elif in_table and re.match(r"-?\d", cells[0]):
            rows.append((float(cells[0].split()[0]), float(cells[1])))
    return rows


def test_markdown_names_the_scale_and_its_w_is_scale_minus_one(measured, monkeypatch) -> None:
    model, _, res = measured
    md = gt.guidance_markdown(res)
    assert "| scale | w = scale − 1 | seeds |" in md and "`cfg(model, y, scale)`" in md
    rows = scale_and_w(md)
    assert sorted(rows) == [(0.0, -1.0), (0.0, -1.0), (3.0, 2.0), (3.0, 2.0)]  # trade-off and inversion tables
    # the column means Ho & Salimans' w: their (1 + w)·ε(x,y) − w·ε(x,∅) is cfg at that scale, on the model
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([10, 500, 900]), torch.tensor([1, 4, 7])
    with torch.no_grad():
        eps_y, eps_null = model(x, t, y), model(x, t, torch.full_like(y, 10))
        for scale, w in rows:
            assert torch.allclose((1 + w) * eps_y - w * eps_null, cfg(model, y, scale)(x, t), atol=1e-5)
            assert not torch.allclose((1 + scale) * eps_y - scale * eps_null, cfg(model, y, scale)(x, t), atol=1e-5)
    monkeypatch.setattr(gt, "ho_salimans_w", lambda scale: scale)  # planted: w holds the scale
    assert any(w != scale - 1 for scale, w in scale_and_w(gt.guidance_markdown(res)))


# -- the committed record ---------------------------------------------------------------------------------------------
def test_the_committed_record_has_its_key_and_its_markdown_is_its_rendering(tmp_path: Path) -> None:
    res = json.loads((RESULTS / "guidance.json").read_text())
    gt.check_resume(gt.GuidanceConfig(), res, RESULTS / "guidance.json")  # the committed counts pass
    assert (RESULTS / "guidance.md").read_text() == gt.guidance_markdown(res)  # notebooks 07 and 08 show this file
    assert all(w == scale - 1 for scale, w in scale_and_w(gt.guidance_markdown(res))) and scale_and_w(
        gt.guidance_markdown(res))
    old = {k: v for k, v in res.items() if k not in ("table", "config", "resume_key", "sessions")}  # before the key
    (tmp_path / "g.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="upgrade_record"):
        gt.check_resume(gt.GuidanceConfig(), old, tmp_path / "g.json")
    gt.upgrade_record(tmp_path / "g.json")
    assert json.loads((tmp_path / "g.json").read_text())["resume_key"] == res["resume_key"]


# -- bad values ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_per_class": 1}, r"n_per_class must be an integer >= 2, got 1"),
    ({"scales": (-1.0,)}, r"--scales must be a finite number in \[0.0, 100.0\], got -1.0"),
    ({"edit_scales": (101.0,)}, r"--edit-scales must be a finite number in \[0.0, 100.0\], got 101.0"),
    ({"strengths": (0.0,)}, r"--strengths must be a finite number in \(0.0, 1.0\], got 0.0"),
    ({"n_invert": 9}, r"n_invert must be an integer >= 10, got 9"), ({"steps": 0}, r"steps .* >= 1, got 0"),
    ({"parts": ("nope",)}, r"'nope'; allowed: 'tradeoff'"),
    ({"seeds": (-1,)}, r"each of --seeds must be an integer in \[0, 9223372036854775807\], got -1"),  # every seed's
])  # fmt: skip
def test_bad_values_name_the_value_and_the_range(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        gt.GuidanceConfig(**kwargs)

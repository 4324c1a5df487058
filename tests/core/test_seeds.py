"""core.seeds owns every seeding rule (issue 20): each stream draws exactly what its old inline formula drew
(written out again here, independently), the front-ends really call the module, seeds up to SEED_MAX work, bad
seeds are refused with the range, the shared seeds the docstring lists are asserted as listed, and no
``manual_seed(`` is left outside core/seeds.py but the allow-listed ones. Each check has a planted bug."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ddim_lesson.core import seeds
from ddim_lesson.core.checks import SEED_MAX

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "ddim_lesson"


def old(s: int) -> torch.Generator:
    """The generator every old formula built inline."""
    return torch.Generator().manual_seed(s)


def same_draws(a: torch.Generator, b: torch.Generator) -> bool:
    """The first draws of two generators agree (normal, uniform and a permutation, as the streams draw them)."""
    return (torch.equal(torch.randn(16, generator=a), torch.randn(16, generator=b))
            and torch.equal(torch.rand(8, generator=a), torch.rand(8, generator=b))
            and torch.equal(torch.randperm(50, generator=a), torch.randperm(50, generator=b)))


# stream -> (the new function of (seed, k), the old formula of (seed, k)); k is b, c, rank or epoch where there
# is one. The old formulas are copied from the call sites as they were before core.seeds.
STREAMS: dict[str, tuple[Callable[[int, int], torch.Generator], Callable[[int, int], int]]] = {
    "latents": (lambda s, k: seeds.latents_generator(s), lambda s, k: s),
    "noise": (lambda s, k: seeds.noise_generator(s), lambda s, k: s + 1_000_000_007),
    "batch": (lambda s, k: seeds.latents_generator(seeds.batch_seed(s, k)), lambda s, k: s * 100_003 + k),
    "class": (lambda s, k: seeds.latents_generator(seeds.class_seed(s, k)), lambda s, k: 1000 * s + k),
    "batch noise": (lambda s, k: seeds.noise_generator(seeds.batch_seed(s, k)),
                    lambda s, k: s * 100_003 + k + 1_000_000_007),
    "sdedit": (lambda s, k: seeds.sdedit_generator(s), lambda s, k: s),
    "forward": (lambda s, k: seeds.forward_noise_generator(s), lambda s, k: s),
    "train": (lambda s, k: seeds.train_generator(s, k), lambda s, k: s * 7919 + k),
    "data order": (lambda s, k: seeds.data_order_generator(s, k), lambda s, k: s * 100003 + k),
    "classifier order": (lambda s, k: seeds.classifier_order_generator(s), lambda s, k: s),
    "subset": (lambda s, k: seeds.subset_generator(), lambda s, k: 0),
    "toy train": (lambda s, k: seeds.toy_data_generator(s, True), lambda s, k: s + 0),
    "toy test": (lambda s, k: seeds.toy_data_generator(s, False), lambda s, k: s + 1),
    "reference": (lambda s, k: seeds.reference_data_generator(s), lambda s, k: s),
    "invert images": (lambda s, k: seeds.invert_images_generator(s), lambda s, k: s),
    "backdrop": (lambda s, k: seeds.backdrop_generator(), lambda s, k: 12345),
    "flow noise": (lambda s, k: seeds.flow_study_generator(s, "noise"), lambda s, k: s + 1000),
    "flow data": (lambda s, k: seeds.flow_study_generator(s, "data"), lambda s, k: s + 2000),
    "flow fresh": (lambda s, k: seeds.flow_study_generator(s, "fresh"), lambda s, k: s + 3000),
    "flow control": (lambda s, k: seeds.flow_study_generator(s, "control"), lambda s, k: s + 4000),
}
CASES = [(0, 0), (1, 3), (12345, 7), (10**12, 2)]  # below the old overflow, where the old formulas worked


def follows_old_rule(new: Callable[[int, int], torch.Generator], formula: Callable[[int, int], int]) -> bool:
    return all(same_draws(new(s, k), old(formula(s, k))) for s, k in CASES)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_stream_draws_what_its_old_formula_drew(name: str) -> None:
    assert follows_old_rule(*STREAMS[name]), name


def test_the_plain_seeds_and_the_global_seed_are_unchanged() -> None:
    """reflow's pair noise is the latents stream; flow study's reflow part is seed + 1; seed_global is
    torch.manual_seed(seed) (the weights of a fresh model)."""
    assert all(seeds.flow_study_seed(s, "reflow") == s + 1 for s, _ in CASES)
    with torch.random.fork_rng():
        seeds.seed_global(1234)
        a = torch.randn(16)
        torch.manual_seed(1234)
        assert torch.equal(a, torch.randn(16))


@pytest.mark.parametrize("planted", ["noise without NOISE_OFFSET", "batch without b", "train without rank",
                                     "data order with 7919", "toy test as train", "class with 100003"])
def test_a_stream_that_drops_its_offset_is_caught(planted: str) -> None:
    """The same check fails for a stream that loses its offset or takes another stream's multiplier."""
    wrong = {"noise without NOISE_OFFSET": (seeds.latents_generator, "noise"),
             "batch without b": (lambda s: seeds.latents_generator(seeds.batch_seed(s, 0)), "batch"),
             "train without rank": (seeds.train_generator, "train"),
             "data order with 7919": (lambda s: seeds.train_generator(s), "data order"),
             "toy test as train": (seeds.toy_data_generator, "toy test"),
             "class with 100003": (lambda s: seeds.latents_generator(seeds.batch_seed(s, 0)), "class")}
    fn, stream = wrong[planted]
    assert not follows_old_rule(lambda s, k: fn(s), STREAMS[stream][1])


def test_derived_seeds_wrap_so_every_seed_up_to_seed_max_works() -> None:
    """seed·mult + add mod 2**64 for a generator; mod 2**63 where the result is a seed again (batch, class), so
    Table 1's batches work for seeds above 9.2e13 (they raised before: seed·100003 left [0, SEED_MAX])."""
    big = (SEED_MAX, SEED_MAX - 1, 10**15)
    for s in big:
        assert seeds.derived_seed(s, 7919, 3) == (s * 7919 + 3) % 2**64
        assert seeds.batch_seed(s, 5) == (s * 100_003 + 5) % 2**63 <= SEED_MAX
        assert seeds.class_seed(s, 9) == (s * 1000 + 9) % 2**63 <= SEED_MAX
    for name, (new, _) in STREAMS.items():
        a, b = new(SEED_MAX, 1), new(SEED_MAX - 1, 1)
        assert name in ("subset", "backdrop") or not same_draws(a, b), name  # neighbouring seeds differ
    assert seeds.derived_seed(12345, 100003, 7) == 12345 * 100003 + 7  # below the modulus: the value itself


@pytest.mark.parametrize("bad", [-1, SEED_MAX + 1, 2**64, 1.5, True, "3"])
def test_a_bad_seed_is_refused_naming_the_value_and_the_range(bad: object) -> None:
    calls = [lambda: seeds.latents_generator(bad), lambda: seeds.noise_generator(bad),
             lambda: seeds.batch_seed(bad, 0), lambda: seeds.class_seed(bad, 0), lambda: seeds.sdedit_generator(bad),
             lambda: seeds.forward_noise_generator(bad), lambda: seeds.seed_global(bad),
             lambda: seeds.train_generator(bad), lambda: seeds.data_order_generator(bad, 0),
             lambda: seeds.classifier_order_generator(bad), lambda: seeds.toy_data_generator(bad, False),
             lambda: seeds.reference_data_generator(bad), lambda: seeds.invert_images_generator(bad),
             lambda: seeds.flow_study_generator(bad, "data"), lambda: seeds.derived_seed(bad, 7919)]
    for call in calls:
        with pytest.raises(ValueError, match=rf"seed must be an integer in \[0, {SEED_MAX}\], got"):
            call()
    for name, call in (("b", lambda: seeds.batch_seed(0, -1)), ("c", lambda: seeds.class_seed(0, -1)),
                       ("rank", lambda: seeds.train_generator(0, -1)),
                       ("epoch", lambda: seeds.data_order_generator(0, -1))):
        with pytest.raises(ValueError, match=rf"{name} must be an integer >= 0, got -1"):
            call()
    with pytest.raises(ValueError, match="unknown part 'nosie'; allowed: 'reflow'"):
        seeds.flow_study_generator(0, "nosie")


def gen_seed(g: torch.Generator) -> int:
    return g.initial_seed()


def test_the_shared_generator_seeds_are_those_the_docstring_lists() -> None:
    """Kept as they were (shipped results rest on them); asserted as documented, each with its counter-case."""
    zero = [seeds.latents_generator(0), seeds.subset_generator(), seeds.toy_data_generator(0, True),
            seeds.train_generator(0, 0), seeds.data_order_generator(0, 0)]
    assert {gen_seed(g) for g in zero} == {0}  # training with seed 0: all seeded 0
    with torch.random.fork_rng():
        seeds.seed_global(0)
        assert torch.initial_seed() == 0
    assert all(gen_seed(seeds.train_generator(0, r)) == gen_seed(seeds.data_order_generator(0, r)) for r in range(8))
    for s in range(1, 200):  # from seed 1 on, timesteps (rank < 64) and data order (epoch < 10**4) never meet
        train = {gen_seed(seeds.train_generator(s, r)) for r in range(64)}
        assert s * 7919 + 63 < s * 100003 and not train & {s * 100003, s * 100003 + 9999}
    for s, e in CASES:  # data order of epoch e and batch e's x_T share their seed below 2**63 ...
        assert gen_seed(seeds.data_order_generator(s, e)) == seeds.batch_seed(s, e)
    assert gen_seed(seeds.data_order_generator(10**14, 1)) != seeds.batch_seed(10**14, 1)  # ... not above
    plain = [seeds.latents_generator, seeds.sdedit_generator, seeds.forward_noise_generator,
             seeds.invert_images_generator, seeds.classifier_order_generator, seeds.reference_data_generator]
    assert {gen_seed(f(77)) for f in plain} == {77}
    assert seeds.class_seed(3, 4) == 3004  # an explorer's x_T with seed 3004
    assert gen_seed(seeds.toy_data_generator(5, False)) == gen_seed(seeds.toy_data_generator(6, True))
    assert gen_seed(seeds.toy_data_generator(5, False)) != gen_seed(seeds.toy_data_generator(5, True))


# -- the front-ends call the module --------------------------------------------------------------------------
def test_training_draws_all_its_randomness_through_core_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with seed 0 whose four streams are pointed at seed 3 is the run with seed 3, weight for weight:
    no stream of training is seeded outside core.seeds. Pointing only the timestep stream away changes it."""
    from ddim_lesson.store import data
    from ddim_lesson.train import loop, train_config
    from ddim_lesson.train.train_config import TrainConfig

    def run(seed: int) -> torch.Tensor:
        cfg = TrainConfig(dataset="two-moons", steps=4, batch_size=8, mlp_hidden=8, mlp_depth=1, n_toy=64,
                          device="cpu", progress=False, seed=seed, bf16=False)
        with torch.random.fork_rng():
            ema = loop.train(cfg).ema
        return torch.cat([p.detach().flatten() for p in ema.parameters()])

    base, three = run(0), run(3)
    assert loop.train_generator is seeds.train_generator and loop.seed_global is seeds.seed_global
    monkeypatch.setattr(loop, "train_generator", lambda s, rank=0: seeds.train_generator(s + 3, rank))
    assert not torch.equal(run(0), base), "the loop must take its timesteps and noise from train_generator"
    monkeypatch.setattr(loop, "seed_global", lambda s: seeds.seed_global(s + 3))
    monkeypatch.setattr(train_config, "data_order_generator", lambda s, e: seeds.data_order_generator(s + 3, e))
    monkeypatch.setattr(data, "toy_data_generator", lambda s, train=True: seeds.toy_data_generator(s + 3, train))
    assert torch.equal(run(0), three)


def test_the_guidance_tables_class_latents_come_from_class_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    from ddim_lesson.evaluate import guidance_eval
    from ddim_lesson.store.pretrained import pretrained

    model, schedule = pretrained("fashion-mnist-cond")
    monkeypatch.setattr(guidance_eval, "ddim_sample", lambda m, sch, x_T, steps: x_T)  # samples = their x_T
    x, y = guidance_eval.class_samples(model, schedule, 3.0, 2, 1, seed=5, classes=(0, 7))
    want = [torch.randn((2, 1, 28, 28), generator=old(1000 * 5 + c)) for c in (0, 7)]  # the old formula
    assert torch.equal(x, torch.cat(want)) and y.tolist() == [0, 0, 7, 7]
    monkeypatch.setattr(guidance_eval, "class_seed", lambda s, c: seeds.class_seed(s, c + 1))
    x2, _ = guidance_eval.class_samples(model, schedule, 3.0, 2, 1, seed=5, classes=(0, 7))
    assert torch.equal(x2[:2], torch.randn((2, 1, 28, 28), generator=old(5001)))


def test_invert_takes_its_test_images_from_invert_images_generator(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    from ddim_lesson.cli import commands
    from ddim_lesson.cli.main import main

    images = (torch.arange(20.0) / 20).view(20, 1, 1, 1).expand(20, 1, 28, 28)  # image i is the constant i/20
    monkeypatch.setattr(commands, "load_images", lambda name, train=True, **k: images)
    monkeypatch.setattr(commands, "ddim_invert", lambda m, s, x, **k: x)
    monkeypatch.setattr(commands, "ddim_sample", lambda m, s, z, **k: z)
    shown: list[torch.Tensor] = []
    monkeypatch.setattr(commands, "save_grid", lambda x, out, **k: shown.append(x))

    def picks(seed: int) -> list[int]:
        argv = ["invert", "--n", "4", "--seed", str(seed), "--steps", "2", "--device", "cpu", "--no-progress",
                "--out", str(tmp_path / "inv.png")]
        assert main(argv) == 0
        return (shown[-1][:4, 0, 0, 0] * 20).round().long().tolist()

    before = picks(9)
    assert before == torch.randperm(20, generator=old(9))[:4].tolist()  # the old formula
    monkeypatch.setattr(seeds, "invert_images_generator", lambda s: old(s + 1))
    after = picks(9)
    assert after == torch.randperm(20, generator=old(10))[:4].tolist() and after != before


# -- no seeding rule outside core/seeds.py -------------------------------------------------------------------
ALLOWED = {  # file -> (manual_seed( calls kept, why)
    "core/seeds.py": (2, "the module that owns the rules"),
    "evaluate/speed.py": (1, "a benchmark's fixed input: only its timing is reported"),
    "evaluate/throughput.py": (1, "a benchmark's fixed input: only its timing is reported"),
    "course/thread_bench.py": (1, "a benchmark's fixed input: only its timing is reported"),
    "cli/gpu_stages.py": (3, "a device check's fixed inputs and tiny model, compared within one run only"),
    "course/exercises/solvers.py": (1, "an exercise checker's fixed test cases"),
    "course/exercises/harness.py": (1, "an exercise checker's fixed test cases"),
}


def seeding_outside(sources: dict[str, str]) -> dict[str, int]:
    """file -> its ``manual_seed(`` calls beyond the allow-list."""
    counts = {path: len(re.findall(r"manual_seed\(", text)) for path, text in sources.items()}
    return {p: n for p, n in counts.items() if n > ALLOWED.get(p, (0, ""))[0]}


def package_sources() -> dict[str, str]:
    return {p.relative_to(PKG).as_posix(): p.read_text(encoding="utf-8") for p in sorted(PKG.rglob("*.py"))}


def test_no_manual_seed_outside_core_seeds_but_the_allow_list() -> None:
    sources = package_sources()
    assert seeding_outside(sources) == {}
    assert all(path in sources for path in ALLOWED), "an allow-listed file is gone: drop its line"
    planted = {**sources, "evaluate/planted.py": "x = torch.randn(3, generator=torch.Generator().manual_seed(s + 7))",
               "evaluate/speed.py": sources["evaluate/speed.py"] + "\ntorch.manual_seed(1)\n"}
    assert seeding_outside(planted) == {"evaluate/planted.py": 1, "evaluate/speed.py": 2}

"""Every seeding rule of the package, in one place: each random stream's generator, or seed, by name.

A stream is the run of random numbers one job draws. Its generator is a CPU ``torch.Generator`` seeded by the
formula below, whatever device the job runs on (draw on the CPU, then ``.to(device)``): a CUDA generator seeded
alike draws other numbers, so a seed would name other samples on a GPU. ``seed`` is the user's seed, an int in
[0, SEED_MAX] (``check_seed``); b, c, epoch and rank are ints >= 0. A bad one is a ValueError naming the value
and the range. Pure: no I/O; ``seed_global`` alone changes state (torch's global generators).

| function (s: a seed; b, c, epoch, rank >= 0) | generator seed | draws | used by |
|---|---|---|---|
| ``latents_generator(s)`` | s | x_T of a batch or an explorer | generate.seeded_latents, reflow_pairs |
| ``noise_generator(s)`` | s + NOISE_OFFSET | that batch's η > 0 or σ̂ noise | generate, widgets.sampler |
| ``batch_seed(seed, b)`` -> s | (seed·100003 + b) mod 2**63 | batch b of a table cell | generate, every FID table |
| ``class_seed(seed, c)`` -> s | (seed·1000 + c) mod 2**63 | class c's x_T, guidance tables | guidance_eval |
| ``sdedit_generator(seed)`` | seed | SDEdit's noise | guidance_eval, widgets.guidance |
| ``forward_noise_generator(seed)`` | seed | the forward explorer's ε | widgets.forward |
| ``seed_global(seed)`` | seed | a fresh model's weights | loop, distill, reflow, classifier_train |
| ``train_generator(seed, rank)`` | (seed·7919 + rank) mod 2**64 | training's t and noise | loop, distill, reflow |
| ``data_order_generator(seed, epoch)`` | (seed·100003 + epoch) mod 2**64 | training's data order | train_config |
| ``classifier_order_generator(seed)`` | seed | the classifier's data order | classifier_train |
| ``subset_generator()`` | 0 | the K/P training subsets | train_config.subset_indices |
| ``toy_data_generator(seed, train)`` | seed (train), seed + 1 (test) | a toy set's points | store.data.load_dataset |
| ``reference_data_generator(seed)`` | seed | fresh toy data to compare with | widgets.distill |
| ``invert_images_generator(seed)`` | seed | the test images ``invert`` takes | cli.commands |
| ``backdrop_generator()`` | 12345 | the grey data behind a 2-D scatter | cli.commands.save_scatter |
| ``flow_study_seed/_generator(seed, part)`` | seed + FLOW_STUDY[part] | notebook 10's study, by part | flow_study |

Shared generator seeds. These numbers were fixed before this module and shipped results rest on them (every
shipped model was trained with seed 0), so they stay; two streams with the same generator seed draw from the
same Mersenne-twister sequence:
- training with seed 0: the global generators (weights), the subset permutation, toy training data, rank 0's
  timesteps and epoch 0's data order are all seeded 0, and rank r's timesteps share epoch r's seed;
  for seed >= 1, timesteps (seed·7919 + rank) and data order (seed·100003 + e) never meet;
- ``data_order_generator(seed, e)`` and batch e's x_T (``batch_seed(seed, e)``) share seed·100003 + e
  wherever that is below 2**63 mod 2**64 (every seed below 9.2e13), as the multiplier is the same;
- the plain-seed streams (x_T of an explorer, SDEdit, forward, invert, classifier order, reference data) share
  ``seed``; class c's x_T with seed s is an explorer's x_T with seed 1000·s + c; the toy test set of seed s is
  the toy training set of seed s + 1.
``tests/core/test_seeds.py`` asserts each of these as written here.

Wrap-around: a stream reached as ``seed·mult + add`` is reduced mod 2**64 (what manual_seed takes) so every
seed up to SEED_MAX works; a derived seed that is a seed again (batch, class: it goes to ``latents_generator``
and ``noise_generator``) is reduced mod 2**63 instead, into [0, SEED_MAX]. Below the modulus the value is
seed·mult + add itself, so a run seeded before the rule draws the same numbers.
"""

from __future__ import annotations

import torch

from .checks import SEED_MAX, check_choice, check_int, check_seed

NOISE_OFFSET = 1_000_000_007  # a batch's noise generator: its x_T seed plus this
BATCH_MULT = 100_003  # batch b of seed s: s·BATCH_MULT + b (also the data order's multiplier: see above)
CLASS_MULT = 1_000  # class c of seed s: s·CLASS_MULT + c
TRAIN_MULT = 7_919  # training's timesteps and noise on rank r: s·TRAIN_MULT + r
SUBSET_SEED = 0  # the one permutation the K/P training subsets are cut from
BACKDROP_SEED = 12_345  # the toy data drawn behind a 2-D sample's scatter plot
FLOW_STUDY = {"reflow": 1, "noise": 1000, "data": 2000, "fresh": 3000, "control": 4000}  # part -> offset
GENERATOR_SEEDS = 2**64  # torch.Generator.manual_seed takes [0, 2**64)


def derived_seed(seed: int, mult: int, add: int = 0) -> int:
    """The generator seed (seed·mult + add) mod 2**64, which manual_seed takes for every seed up to SEED_MAX
    (seed·mult alone overflows int64 from seed ≈ 1e15 at mult 7919); below 2**64 it is seed·mult + add itself."""
    return (check_seed(seed) * mult + add) % GENERATOR_SEEDS


def _generator(s: int) -> torch.Generator:
    """A CPU generator seeded with s in [0, 2**64)."""
    return torch.Generator().manual_seed(s)


def latents_generator(seed: int) -> torch.Generator:
    """x_T's generator: seeded with the seed itself (an explorer's seed, or a batch's ``batch_seed``)."""
    return _generator(check_seed(seed))


def noise_generator(seed: int) -> torch.Generator:
    """A batch's η > 0 (or σ̂) noise: seeded ``seed + NOISE_OFFSET``, apart from x_T's, so changing η, steps or
    spacing never moves x_T. On the CPU for every device, so that a seed names the same samples everywhere."""
    return _generator(check_seed(seed) + NOISE_OFFSET)


def batch_seed(seed: int, b: int) -> int:
    """The x_T seed of batch b of a table cell: (seed·100003 + b) mod 2**63, the same in every cell, so cells
    differ only by the sampler."""
    return derived_seed(seed, BATCH_MULT, check_int("b", b, 0)) % (SEED_MAX + 1)


def class_seed(seed: int, c: int) -> int:
    """The x_T seed of class c in the guidance tables: (seed·1000 + c) mod 2**63, the same at every scale."""
    return derived_seed(seed, CLASS_MULT, check_int("c", c, 0)) % (SEED_MAX + 1)


def sdedit_generator(seed: int) -> torch.Generator:
    """SDEdit's noise (the x_t it starts from): seeded with the seed."""
    return _generator(check_seed(seed))


def forward_noise_generator(seed: int) -> torch.Generator:
    """The forward-process explorer's one ε, drawn once: seeded with the seed."""
    return _generator(check_seed(seed))


def seed_global(seed: int) -> None:
    """Seed torch's global generators (CPU and CUDA) with the seed: a fresh model's initial weights, and
    anything else drawn without a generator."""
    torch.manual_seed(check_seed(seed))


def train_generator(seed: int, rank: int = 0) -> torch.Generator:
    """Training's timesteps and noise on ``rank``: seeded (seed·7919 + rank) mod 2**64."""
    return _generator(derived_seed(seed, TRAIN_MULT, check_int("rank", rank, 0)))


def data_order_generator(seed: int, epoch: int) -> torch.Generator:
    """Training's data order in ``epoch`` (one permutation): seeded (seed·100003 + epoch) mod 2**64, so it
    depends on (seed, step) only and a resumed run replays it."""
    return _generator(derived_seed(seed, BATCH_MULT, check_int("epoch", epoch, 0)))


def classifier_order_generator(seed: int) -> torch.Generator:
    """The FID classifier's data order over all its epochs: seeded with the seed."""
    return _generator(check_seed(seed))


def subset_generator() -> torch.Generator:
    """The one permutation the K/P training subsets are cut from: seeded 0 whatever the run's seed, so parts K and
    K' of one P never share an image."""
    return _generator(SUBSET_SEED)


def toy_data_generator(seed: int, train: bool = True) -> torch.Generator:
    """A toy set's points: seeded with the seed for the training set, seed + 1 for the test set."""
    return _generator(check_seed(seed) + (0 if train else 1))


def reference_data_generator(seed: int) -> torch.Generator:
    """A fresh draw of toy data that samples are compared with: seeded with the seed."""
    return _generator(check_seed(seed))


def invert_images_generator(seed: int) -> torch.Generator:
    """Which test images ``ddim-lesson invert`` takes (the first n of one permutation): seeded with the seed."""
    return _generator(check_seed(seed))


def backdrop_generator() -> torch.Generator:
    """The toy data drawn in grey behind a 2-D sample's scatter plot: seeded 12345."""
    return _generator(BACKDROP_SEED)


def flow_study_seed(seed: int, part: str) -> int:
    """The seed of one part of notebook 10's study: seed + FLOW_STUDY[part] (a seed, or a generator's seed)."""
    return check_seed(seed) + FLOW_STUDY[check_choice("part", part, tuple(FLOW_STUDY))]


def flow_study_generator(seed: int, part: str) -> torch.Generator:
    """The generator of one part of notebook 10's study: seeded seed + FLOW_STUDY[part]."""
    return _generator(flow_study_seed(seed, part))

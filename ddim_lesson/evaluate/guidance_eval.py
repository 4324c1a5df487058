"""Measurements behind notebooks 07 and 08: the guidance trade-off, SDEdit's faithfulness/realism curve,
editing by inversion, and inversion under guidance. Each function returns plain numbers (dicts of
floats), so ``benchmarks/guidance.py`` can commit them and the notebooks can recompute small versions.

Quality numbers use the course's Fashion-MNIST classifier (``classifier.py``): its accuracy on the
class asked for, its FID features (``metrics.py``), and the mean pairwise feature distance within a
class as a diversity figure.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.guidance import cfg, sdedit
from ..core.inversion import ddim_invert
from ..core.samplers import ddim_sample
from ..core.schedules import NoiseSchedule
from ..core.seeds import class_seed, sdedit_generator
from ..nets.models import num_classes_of
from .generate import image_shape, seeded_latents
from .metrics import FeatureStats, classifier_and_sha, features, reference_stats

# (source class, target class): shirt -> dress, T-shirt -> dress, sneaker -> ankle boot, pullover -> coat
EDIT_PAIRS = ((6, 3), (0, 3), (7, 9), (2, 4))


@torch.no_grad()
def class_samples(model: nn.Module, schedule: NoiseSchedule, scale: float, n_per_class: int, steps: int,
                  seed: int, classes: tuple[int, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n_per_class guided DDIM samples (η = 0) of each class. The latents depend on (seed, class) only, so
    every scale starts from the same x_T: differences between scales are paired. -> (N, 1, 28, 28), (N,)."""
    classes = classes if classes is not None else tuple(range(num_classes_of(model)))
    xs, ys, shape = [], [], image_shape(model, "class_samples")
    for c in classes:
        x_T = seeded_latents(class_seed(seed, c), n_per_class, shape)  # (n, C, H, W)
        xs.append(ddim_sample(cfg(model, c, scale), schedule, x_T, steps=steps))
        ys.append(torch.full((n_per_class,), c, dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def classify(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The course classifier's features (N, D) and class probabilities (N, 10) of images in [-1, 1]."""
    clf, _ = classifier_and_sha()
    feats = features(images, clf)  # (N, D), from 8-bit pixels like the real data
    return feats, F.softmax(clf.head(feats), dim=1)


def diversity(feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean pairwise Euclidean feature distance within a class, averaged over the classes present."""
    per_class = []
    for c in labels.unique():
        f = feats[labels == c].double()  # (n, D)
        n = f.shape[0]
        if n > 1:
            per_class.append(float(torch.cdist(f, f).sum() / (n * (n - 1))))  # the diagonal is 0
    return sum(per_class) / len(per_class)


def quality(images: torch.Tensor, labels: torch.Tensor, ref: FeatureStats | None = None) -> dict[str, float]:
    """On-class accuracy, mean probability of the asked class, FID against the test set, and diversity."""
    feats, probs = classify(images)
    ref = ref if ref is not None else reference_stats("test")
    return {"accuracy": float((probs.argmax(1) == labels).float().mean()),
            "p_class": float(probs.gather(1, labels[:, None]).mean()),
            "fid": FeatureStats.of(feats).distance(ref),
            "diversity": diversity(feats, labels)}


def blocky(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """A crude version of an image: factor×factor block means, shown as blocks. (B, C, H, W) -> same shape."""
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image root mean squared difference on the [-1, 1] pixel scale. (B, ...) -> (B,)."""
    return (a - b).flatten(1).pow(2).mean(1).sqrt()


@torch.no_grad()
def sdedit_point(model: nn.Module, schedule: NoiseSchedule, x_in: torch.Tensor, labels: torch.Tensor,
                 strength: float, steps: int, seed: int, ref: FeatureStats | None = None) -> dict[str, float]:
    """SDEdit every input towards its own label (the conditional model, scale 1) at one strength: distance to
    the input (faithfulness), and FID and the classifier's accuracy on the true class (realism).
    x_in: (B, 1, 28, 28)."""
    out = sdedit(cfg(model, labels, 1.0), schedule, x_in, strength=strength, steps=steps,
                 generator=sdedit_generator(seed))
    return {"strength": strength, "steps": steps, "rmse_to_input": float(rmse(out, x_in).mean()),
            **quality(out, labels, ref)}


@torch.no_grad()
def inversion_edit_point(model: nn.Module, schedule: NoiseSchedule, x_T: torch.Tensor, x_in: torch.Tensor,
                         labels: torch.Tensor, scale: float, steps: int,
                         ref: FeatureStats | None = None) -> dict[str, float]:
    """Decode latents inverted without a label, now with the true label at a guidance scale; same metrics."""
    out = ddim_sample(cfg(model, labels, scale), schedule, x_T, steps=steps)
    return {"scale": scale, "steps": steps, "rmse_to_input": float(rmse(out, x_in).mean()), **quality(out, labels, ref)}


@torch.no_grad()
def edit_by_inversion(model: nn.Module, schedule: NoiseSchedule, x_src: torch.Tensor, y_src: int, y_tgt: int,
                      scale: float, steps: int, seed: int = 0) -> dict[str, float]:
    """Invert x_src with its own label (conditional, scale 1) and decode with another label at ``scale``.

    Returns the share the classifier puts in the new class, for the edit and for fresh samples of the new
    class from seeded noise, and the mean distance of each to its source image. x_src: (B, 1, 28, 28).
    """
    B = x_src.shape[0]
    x_T = ddim_invert(cfg(model, y_src, 1.0), schedule, x_src, steps=steps)
    edit = ddim_sample(cfg(model, y_tgt, scale), schedule, x_T, steps=steps)
    fresh = ddim_sample(cfg(model, y_tgt, scale), schedule, seeded_latents(seed, B, x_src.shape[1:]), steps=steps)
    tgt = torch.full((B,), y_tgt, dtype=torch.long)
    return {"src": y_src, "tgt": y_tgt, "scale": scale, "n": B,
            "edit_accuracy": float((classify(edit)[1].argmax(1) == tgt).float().mean()),
            "fresh_accuracy": float((classify(fresh)[1].argmax(1) == tgt).float().mean()),
            "edit_rmse_to_source": float(rmse(edit, x_src).mean()),
            "fresh_rmse_to_source": float(rmse(fresh, x_src).mean())}


@torch.no_grad()
def roundtrip_mse(model: nn.Module, schedule: NoiseSchedule, x0: torch.Tensor, steps: int, k: int = 0) -> float:
    """Invert x0 (``fixed_point_iters=k``) and decode exactly (η = 0, clip_x0=False); mean squared error."""
    x_T = ddim_invert(model, schedule, x0, steps=steps, fixed_point_iters=k)
    return float((ddim_sample(model, schedule, x_T, steps=steps, clip_x0=False) - x0).pow(2).mean())

"""Zero-shot relative-depth evaluation (MiDaS protocol) with trivial baselines.

A *test set* (:class:`EvalSet`) is a list of uint8 images with metric ground-truth depth; a
*predictor* maps a list of images to a list of disparity maps at each image's size. Every
predictor is scored the same way (:func:`dalib.metrics.relative_depth_metrics`: per image,
least-squares scale and shift in disparity, invert, cap at the set's max depth, AbsRel and
δ1 over valid pixels; then the mean over images), so a model's numbers sit next to two
predictors that know nothing about the image:

- **constant disparity**: the same value everywhere; after the scale-and-shift fit this is the
  best single depth for each image;
- **ground-plane prior**: disparity growing with the row index ("lower in the picture is
  nearer"), right for a camera looking along a floor or road.

Test sets: the held-out synthetic domains, the real Middlebury photograph shipped with
scikit-image, and any folder of RGB + 16-bit depth PNGs a user has. Also here: the synthetic
validation and held-out datasets of a profile (:func:`validation_sets`, :func:`held_out_sets`)
and :func:`score_domains`, which scores a network on them while it trains.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dalib import synth
from dalib.config import Profile, resolve
from dalib.data import (
    MOTORCYCLE_CALIBRATION,
    SPLIT_SEEDS,
    RGBDFolder,
    SynthDepthDataset,
    middlebury_motorcycle,
)
from dalib.depth import stereo_depth
from dalib.inference import predict_batch
from dalib.metrics import relative_depth_metrics
from dalib.report import markdown_table
from dalib.sample import to_uint8

Predictor = Callable[[list[np.ndarray]], list[np.ndarray]]
"""uint8 images [(H_i, W_i, 3)] -> disparity maps [(H_i, W_i)] (any scale and shift)."""


@dataclass
class EvalSet:
    """A zero-shot test set: images uint8 (H_i, W_i, 3), depth float32 (H_i, W_i) in metres
    (0, NaN or inf where unknown), and the depth cap of the protocol (None: no cap)."""

    name: str
    images: list[np.ndarray]
    depths: list[np.ndarray]
    max_depth: float | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.depths) or not self.images:
            raise ValueError(
                f"test set {self.name!r}: {len(self.images)} images and {len(self.depths)} "
                "depth maps; need the same number, at least one"
            )
        for i, (image, depth) in enumerate(zip(self.images, self.depths)):
            if image.shape[:2] != depth.shape:
                raise ValueError(
                    f"test set {self.name!r}, item {i}: image {image.shape[:2]} "
                    f"vs depth {depth.shape}"
                )

    def __len__(self) -> int:
        return len(self.images)


def _from_dataset(name: str, dataset, max_depth: float | None) -> EvalSet:
    images, depths = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        images.append(to_uint8(sample["image"]))
        depths.append(torch.where(sample["valid"], sample["depth"], 0.0).numpy())
    return EvalSet(name, images, depths, max_depth)


def synthetic_eval_sets(
    profile: Profile, root: Path, domains: Sequence[str], split: str
) -> dict[str, SynthDepthDataset]:
    """One set per domain: ``profile.n_eval`` scenes of ``split`` ("val" or "test", see
    :data:`dalib.data.SPLIT_SEEDS`) each, at the profile's image size, cached under
    ``root/data``."""
    return {
        domain: SynthDepthDataset(
            domain,
            profile.n_eval,
            profile.image_size,
            root / "data",
            seed=SPLIT_SEEDS[split],
            render_size=profile.render_size,
            progress=profile.progress,
        )
        for domain in domains
    }


def held_out_sets(
    profile: Profile, root: Path, domains: Sequence[str] = synth.HELD_OUT
) -> dict[str, SynthDepthDataset]:
    """The held-out domains' test sets (or those of ``domains``): for the final tables only."""
    return synthetic_eval_sets(profile, root, domains, "test")


def validation_sets(
    profile: Profile, root: Path, domains: Sequence[str] = synth.VALIDATION
) -> dict[str, SynthDepthDataset]:
    """The validation domains' sets ("val" split): what training runs are scored on while
    they train and every setting is chosen on."""
    return synthetic_eval_sets(profile, root, domains, "val")


def score_domains(
    net: nn.Module, sets: Mapping[str, Dataset], batch_size: int = 16
) -> dict[str, dict[str, float]]:
    """{domain: {"abs_rel", "delta1"}} of ``net`` ([0, 1] images -> (disparity, ...)) on
    datasets of samples (the validation scoring of every training run).

    Each domain's depth is capped at its ``synth.DOMAINS[domain].max_depth`` (MiDaS protocol,
    :func:`dalib.metrics.relative_depth_metrics`); per-image values are averaged per domain.
    Call under ``torch.no_grad()`` with the net in eval mode.
    """
    device = next(net.parameters()).device
    results = {}
    for domain, dataset in sets.items():
        per_image: dict[str, list[Tensor]] = {"abs_rel": [], "delta1": []}
        max_depth = synth.DOMAINS[domain].max_depth if domain in synth.DOMAINS else None
        for start in range(0, len(dataset), batch_size):
            samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            images = torch.stack([s["image"] for s in samples]).to(device)
            depth = torch.stack([s["depth"] for s in samples]).to(device)
            valid = torch.stack([s["valid"] for s in samples]).to(device)
            pred = net(images)[0].float()
            out = relative_depth_metrics(pred, depth, valid, max_depth=max_depth)
            for key, values in per_image.items():
                values.append(out[f"{key}_per_image"].cpu())
        results[domain] = {k: float(torch.nanmean(torch.cat(v))) for k, v in per_image.items()}
    return results


def synthetic_sets(
    profile: Profile | str | None = None,
    root: str | os.PathLike | None = None,
    domains: Sequence[str] | None = None,
) -> dict[str, EvalSet]:
    """Synthetic test sets: ``domains`` (default: :data:`dalib.synth.HELD_OUT`), the
    profile's ``n_eval`` scenes each, capped at each domain's max depth. Validation domains
    give their "val" scenes (the sets training is scored on), the others their "test" ones."""
    profile, root = resolve(profile, root)
    domains = list(domains) if domains is not None else list(synth.HELD_OUT)
    unknown = [d for d in domains if d not in synth.DOMAINS]
    if unknown:
        raise ValueError(f"unknown domains {unknown}; choose from {sorted(synth.DOMAINS)}")
    validation = [d for d in domains if d in synth.VALIDATION]
    datasets = {
        **held_out_sets(profile, root, [d for d in domains if d not in validation]),
        **validation_sets(profile, root, validation),
    }
    return {
        domain: _from_dataset(domain, datasets[domain], synth.DOMAINS[domain].max_depth)
        for domain in domains
    }


def middlebury_set() -> EvalSet:
    """The Middlebury 2014 Motorcycle view (500 x 741) with its stereo ground truth in metres."""
    image, disparity, valid = middlebury_motorcycle()
    depth = stereo_depth(
        torch.from_numpy(disparity), **MOTORCYCLE_CALIBRATION, mask=torch.from_numpy(valid)
    )
    return EvalSet("middlebury", [image], [depth.numpy().astype(np.float32)], None)


def folder_set(
    images_dir: str | os.PathLike,
    depths_dir: str | os.PathLike,
    depth_scale: float | None = None,
    max_depth: float | None = None,
    name: str | None = None,
) -> EvalSet:
    """A user's RGB-D folder (:class:`dalib.data.RGBDFolder` pairing, native sizes)."""
    pairs = RGBDFolder(images_dir, depths_dir, depth_scale=depth_scale)
    return _from_dataset(name or Path(images_dir).name, pairs, max_depth)


# ---------------------------------------------------------------- predictors


def constant_disparity(images: list[np.ndarray]) -> list[np.ndarray]:
    """The constant-disparity baseline: ones everywhere."""
    return [np.ones(image.shape[:2], dtype=np.float32) for image in images]


def ground_plane_prior(images: list[np.ndarray]) -> list[np.ndarray]:
    """The ground-plane baseline: disparity = row index + 1 (lower rows nearer)."""
    return [
        np.broadcast_to(np.arange(1, h + 1, dtype=np.float32)[:, None], (h, w)).copy()
        for h, w in (image.shape[:2] for image in images)
    ]


BASELINES: dict[str, Predictor] = {
    "constant disparity": constant_disparity,
    "ground-plane prior": ground_plane_prior,
}


def model_predictor(
    model: nn.Module, input_size: int | None = None, batch_size: int = 16
) -> Predictor:
    """A DepthAnything as a predictor (:func:`dalib.inference.predict_batch`, released
    preprocessing; ``input_size`` defaults to the model's)."""
    return lambda images: predict_batch(model, images, input_size, batch_size)


# ---------------------------------------------------------------- scoring


def score_predictor(
    predictor: Predictor, sets: Mapping[str, EvalSet], chunk: int = 64
) -> dict[str, dict[str, float]]:
    """``{set: {"abs_rel", "delta1", "n"}}``: means over the images with valid pixels."""
    results = {}
    for name, test in sets.items():
        per_image: dict[str, list[float]] = {"abs_rel": [], "delta1": []}
        for start in range(0, len(test), chunk):
            images = test.images[start : start + chunk]
            for pred, depth in zip(predictor(images), test.depths[start : start + chunk]):
                m = relative_depth_metrics(
                    torch.from_numpy(np.asarray(pred, dtype=np.float64))[None],
                    torch.from_numpy(depth.astype(np.float64))[None],
                    max_depth=test.max_depth,
                )
                for key, values in per_image.items():
                    values.append(float(m[f"{key}_per_image"][0]))
        values = {k: np.asarray(v) for k, v in per_image.items()}
        n = int(np.isfinite(values["abs_rel"]).sum())
        results[name] = {k: float(np.nanmean(v)) if n else float("nan") for k, v in values.items()}
        results[name]["n"] = n
    return results


def results_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Markdown: one row per predictor, AbsRel and δ1 per set, then their means over sets."""
    sets = list(next(iter(results.values())))
    header = ["model"] + [f"{s} {k}" for s in sets for k in ("AbsRel", "δ1")]
    header += ["mean AbsRel", "mean δ1"]
    rows = []
    for model, by_set in results.items():
        row = [model] + [by_set[s][k] for s in sets for k in ("abs_rel", "delta1")]
        row += [float(np.mean([by_set[s][k] for s in sets])) for k in ("abs_rel", "delta1")]
        rows.append(row)
    return markdown_table(header, rows)


def zero_shot(
    predictors: Mapping[str, Predictor],
    sets: Mapping[str, EvalSet],
    baselines: bool = True,
    progress: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """Score every predictor (and, with ``baselines``, :data:`BASELINES` first) on every set."""
    everyone = {**(BASELINES if baselines else {}), **predictors}
    return {
        name: score_predictor(predictor, sets)
        for name, predictor in tqdm(everyone.items(), desc="evaluate", disable=not progress)
    }


def write_results(results: Mapping, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<path>.md`` (the table) and ``<path>.json`` (every number); returns both."""
    from dalib.io import atomic_write

    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    md, js = base.with_suffix(".md"), base.with_suffix(".json")
    with atomic_write(md) as temp:
        temp.write_text(results_table(results) + "\n", encoding="utf-8")
    with atomic_write(js) as temp:
        temp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return md, js


__all__ = [
    "BASELINES",
    "EvalSet",
    "Predictor",
    "constant_disparity",
    "folder_set",
    "ground_plane_prior",
    "held_out_sets",
    "middlebury_set",
    "model_predictor",
    "results_table",
    "score_domains",
    "score_predictor",
    "synthetic_eval_sets",
    "synthetic_sets",
    "validation_sets",
    "write_results",
    "zero_shot",
]

"""The paper's Table 9 at toy scale: what each ingredient adds, over several seeds.

Variants, each trained from scratch with the profile's budgets:

- ``a``: L_l only: the teacher, trained on the labeled domains;
- ``b``: + L_u on clean unlabeled images (plain self-training on the teacher's labels);
- ``c``: + strong perturbation and CutMix on the unlabeled images;
- ``d``: + L_feat (feature alignment with the frozen semantic encoder, α = 0.85).

Seed ``s`` sets the trained model's initial weights, batch order and augmentation draws. The
students of every seed learn from the pseudo labels of the seed-0 teacher (one pool labelling;
the paper also labels once), so their spread is the students' own. Seed 0 uses the main job's
checkpoints (``teacher``, ``student_clean``, ``student``, ``student_feat``); other seeds write
``<name>_seed<s>``. Every model is scored zero-shot (:mod:`dalib.evaluate`) on the held-out
domains and the Middlebury photograph; :func:`summarise` gives mean ± std over seeds and which
differences between consecutive variants exceed the seed noise.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dalib import evaluate, pseudo, semantic, train
from dalib.config import Profile, artifact_root, get_profile
from dalib.io import atomic_write
from dalib.model import load_checkpoint
from dalib.report import markdown_table

VARIANTS = {
    "a": ("teacher", "L_l only (teacher)"),
    "b": ("student_clean", "+ L_u, clean images"),
    "c": ("student", "+ strong perturbation, CutMix"),
    "d": ("student_feat", "+ L_feat (α = 0.85)"),
}
"""Variant -> (checkpoint name for seed 0, description)."""


def checkpoint_name(variant: str, seed: int) -> str:
    """The checkpoint name of ``variant`` trained with ``seed``."""
    base = VARIANTS[variant][0]
    return base if seed == 0 else f"{base}_seed{seed}"


def train_variant(variant: str, seed: int, profile: Profile, root: Path) -> Path:
    """Train ``variant`` with ``seed`` unless its checkpoint exists (a killed run resumes from
    its last resumable checkpoint); return the checkpoint path."""
    name = checkpoint_name(variant, seed)
    path = train.run_paths(root, name)["final_path"]
    if path.is_file():
        return path
    if variant == "a":  # resume: a killed run continues from its last checkpoint
        train.train_teacher(profile, root=root, name=name, seed=seed, resume=True)
        return path
    teacher = train.run_paths(root, "teacher")["final_path"]
    if not teacher.is_file():
        train.train_teacher(profile, root=root)
    pseudo.pseudo_label(profile=profile, root=root)
    clean = variant == "b"
    extra = []
    if variant == "d":
        extra = [semantic.FeatureAlignment(semantic.train_semantic_encoder(profile, root=root))]
    train.train_student(
        profile,
        root=root,
        name=name,
        seed=seed,
        perturb=not clean,
        cutmix=not clean,
        extra_losses=extra,
        resume=True,
    )
    return path


def run_ablation(
    profile: Profile | str | None = None,
    seeds: Sequence[int] | None = None,
    variants: Sequence[str] = tuple(VARIANTS),
    root: str | os.PathLike | None = None,
) -> dict:
    """Train (or load) every variant x seed and score each; every score is also merged into
    ``<root>/ablation/results.json`` (which keeps other seeds' and variants' entries).

    Returns ``{"scores": {variant: {str(seed): {set: {abs_rel, delta1, n}}}}}`` of this call.
    """
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    root = Path(root) if root is not None else artifact_root(profile)
    seeds = list(seeds if seeds is not None else profile.seeds)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    sets = {**evaluate.synthetic_sets(profile, root), "middlebury": evaluate.middlebury_set()}
    out_path = root / "ablation" / "results.json"
    results: dict = {"scores": {}}
    for variant in variants:
        for seed in seeds:
            path = train_variant(variant, seed, profile, root)
            model = evaluate.model_predictor(load_checkpoint(path), profile.image_size)
            results["scores"].setdefault(variant, {})[str(seed)] = evaluate.evaluate(model, sets)
            _merge_into(out_path, variant, seed, results["scores"][variant][str(seed)])
    return results


def _merge_into(path: Path, variant: str, seed: int, scores: dict) -> None:
    """Add one model's scores to the results file (re-read first: runs of other seeds may
    write it too); atomic, after every model, so a killed run keeps what it finished."""
    saved = json.loads(path.read_text()) if path.is_file() else {"scores": {}}
    saved["scores"].setdefault(variant, {})[str(seed)] = scores
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temp:
        temp.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


def complete_seeds(results: dict) -> dict:
    """``results`` restricted to the seeds that every variant has (a partly run seed would
    otherwise compare variants over different seeds)."""
    scores = results["scores"]
    common = set.intersection(*(set(by_seed) for by_seed in scores.values())) if scores else set()
    return {
        "scores": {
            v: {s: x for s, x in by_seed.items() if s in common} for v, by_seed in scores.items()
        }
    }


def summarise(results: dict, metric: str = "abs_rel") -> tuple[str, list[str]]:
    """(markdown table of mean ± std over seeds per set, one verdict line per variant step).

    A step from one variant to the next "exceeds seed noise" when the difference of the means
    is larger than twice its standard error, sqrt(sd₁²/n₁ + sd₂²/n₂), computed from the seeds.
    """
    scores = results["scores"]
    variants = [v for v in VARIANTS if v in scores]
    sets = list(next(iter(next(iter(scores.values())).values())))

    def values(variant: str, name: str) -> np.ndarray:
        return np.array([s[name][metric] for s in scores[variant].values()])

    def mean_over_sets(variant: str) -> np.ndarray:
        return np.mean([values(variant, name) for name in sets], axis=0)

    def spread(x: np.ndarray) -> str:
        return f"{x.mean():.3f} ± {x.std(ddof=1):.3f}" if len(x) > 1 else f"{x.mean():.3f}"

    rows = [
        [f"({v}) {VARIANTS[v][1]}", len(mean_over_sets(v))]
        + [spread(values(v, s)) for s in sets]
        + [spread(mean_over_sets(v))]
        for v in variants
    ]
    table = markdown_table(["variant", "seeds", *sets, "mean over sets"], rows)
    verdicts = []
    for first, second in itertools.pairwise(variants):
        x, y = mean_over_sets(first), mean_over_sets(second)
        diff = y.mean() - x.mean()
        se = (
            math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
            if min(len(x), len(y)) > 1
            else float("nan")
        )
        better = diff < 0 if metric == "abs_rel" else diff > 0
        verdict = (
            "one seed: cannot tell"
            if math.isnan(se)
            else ("exceeds" if abs(diff) > 2 * se else "within") + " seed noise"
        )
        verdicts.append(
            f"({first}) -> ({second}): mean {metric} {diff:+.4f}"
            + ("" if math.isnan(se) else f" ± {se:.4f}")
            + " "
            f"({'better' if better else 'worse'}; {verdict})"
        )
    return table, verdicts


__all__ = [
    "VARIANTS",
    "checkpoint_name",
    "complete_seeds",
    "run_ablation",
    "summarise",
    "train_variant",
]

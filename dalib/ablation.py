"""The paper's Table 9 at toy scale: what each ingredient adds, over several seeds.

Variants, each trained from the same encoder initialisation (the profile's stand-in for
DINOv2) on the *student's* schedule (``student_steps`` steps of ``batch_size`` labeled
images), so that each row differs from the one above in one ingredient only:

- ``a`` ``labeled_only``: L_l only, the labeled domains (the teacher's recipe on the
  student's schedule; not the teacher itself);
- ``b`` ``student_plain``: + L_u on clean unlabeled images (naive self-training);
- ``c`` ``student_perturb``: + strong perturbation and CutMix on the unlabeled images;
- ``d`` ``student``: + L_feat (feature alignment with the frozen stand-in, α = 0.85): the
  full method, ``checkpoints/student.safetensors``;
- ``e`` ``student_trim10`` (optional, not in the paper): + each pseudo label's 10% largest-loss
  pixels left out of L_u, as the Depth Anything V2 authors later described
  (DepthAnything/Depth-Anything-V2 issue #108). Reported as its own row, never folded in.

Seed ``s`` sets the trained model's initial head weights, batch order and augmentation draws.
The students of every seed learn from the pseudo labels of the one teacher (one pool
labelling; the paper also labels once), so their spread is the students' own. Seed 0 uses the
main job's checkpoints; other seeds write ``<name>_seed<s>``. Every model is scored zero-shot
(:mod:`dalib.evaluate`) on the sets asked for (by default the validation domains while
settings are being chosen; the held-out domains and the Middlebury photograph for the final
table); :func:`summarise` gives mean ± std over seeds and whether each step between
consecutive variants exceeds twice its paired standard error over seeds.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dalib import evaluate, pseudo, semantic, synth, train
from dalib.config import Profile, resolve, run_paths
from dalib.io import atomic_write
from dalib.model import load_checkpoint
from dalib.pool import pool_size
from dalib.report import markdown_table

VARIANTS = {
    "a": ("labeled_only", "L_l only"),
    "b": ("student_plain", "+ L_u, clean images"),
    "c": ("student_perturb", "+ strong perturbation, CutMix"),
    "d": ("student", "+ L_feat (α = 0.85)"),
    "e": ("student_trim10", "+ drop each pseudo label's 10% largest-loss pixels (optional)"),
}
"""Variant -> (checkpoint name for seed 0, description)."""
TABLE9 = "abcd"
"""The paper's rows; ``e`` is an optional extra row, trained only when asked for."""
TRIM = 0.1  # row e's fraction of each pseudo label's largest-loss pixels left out


def seeded(name: str, seed: int) -> str:
    """The checkpoint name of run ``name`` trained with ``seed`` (seed 0: ``name`` itself)."""
    return name if seed == 0 else f"{name}_seed{seed}"


def checkpoint_name(variant: str, seed: int) -> str:
    """The checkpoint name of ``variant`` trained with ``seed``."""
    return seeded(VARIANTS[variant][0], seed)


def feature_alignment(profile: Profile, root: Path) -> semantic.FeatureAlignment:
    """L_feat (α = 0.85, unlabeled images) against the profile's pretrained encoder, frozen
    (the offline semantic stand-in when the profile has none)."""
    source = profile.pretrained_encoder or "synthetic"
    return semantic.FeatureAlignment(
        semantic.frozen_encoder(source, profile.encoder, profile, root)
    )


def train_variant(variant: str, seed: int, profile: Profile, root: Path) -> Path:
    """Train ``variant`` with ``seed`` unless its checkpoint exists (a killed run resumes from
    its last resumable checkpoint); return the checkpoint path."""
    name = checkpoint_name(variant, seed)
    if variant != "a":
        return train_student_run(
            name,
            seed,
            profile,
            root,
            perturb=variant != "b",
            align=variant in ("d", "e"),
            trim=TRIM if variant == "e" else 0.0,
        )
    path = run_paths(root, name)["final_path"]
    if not path.is_file():  # the student's schedule; resume: a killed run continues
        train.train_teacher(
            profile, root=root, name=name, seed=seed, steps=profile.student_steps, resume=True
        )
    return path


def train_student_run(
    name: str,
    seed: int,
    profile: Profile,
    root: Path,
    perturb: bool,
    align: bool,
    pool_size: int | None = None,
    trim: float = 0.0,
) -> Path:
    """Train student ``name`` (perturbation and CutMix both on or off, L_feat if ``align``) unless
    its checkpoint exists, after making sure the teacher's pseudo labels exist; a killed run
    resumes. Returns the checkpoint path."""
    path = run_paths(root, name)["final_path"]
    if path.is_file():
        return path
    ensure_pseudo_labels(profile, root)
    train.train_student(
        profile,
        root=root,
        name=name,
        seed=seed,
        perturb=perturb,
        cutmix=perturb,
        extra_losses=[feature_alignment(profile, root)] if align else [],
        pool_size=pool_size,
        trim=trim,
        resume=True,
    )
    return path


def ensure_pseudo_labels(profile: Profile, root: Path) -> None:
    """The teacher (trained if missing) and its pseudo labels of the pool (made if missing)."""
    if not run_paths(root, "teacher")["final_path"].is_file():
        train.train_teacher(profile, root=root)
    pseudo.pseudo_label(profile=profile, root=root)


SPLITS = {"held_out": "results.json", "validation": "validation.json"}
"""Which sets a model is scored on -> the results file under ``<root>/ablation/``."""


def scoring_sets(profile: Profile, root: Path, split: str) -> dict:
    """The test sets of ``split``: "validation" (the validation domains: where settings are
    chosen) or "held_out" (the held-out domains and the Middlebury photo: final tables)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if split == "validation":
        return evaluate.synthetic_sets(profile, root, synth.VALIDATION)
    return {**evaluate.synthetic_sets(profile, root), "middlebury": evaluate.middlebury_set()}


def run_ablation(
    profile: Profile | str | None = None,
    seeds: Sequence[int] | None = None,
    variants: Sequence[str] = TABLE9,
    root: str | os.PathLike | None = None,
    split: str = "held_out",
) -> dict:
    """Train (or load) every variant x seed and score each on the sets of ``split`` (see
    :func:`scoring_sets`); every score is also merged into ``<root>/ablation/results.json``
    (held-out) or ``validation.json``, which keep other seeds' and variants' entries.

    Returns ``{"scores": {variant: {str(seed): {set: {abs_rel, delta1, n}}}}}`` of this call.
    """
    profile, root = resolve(profile, root)
    seeds = list(seeds if seeds is not None else profile.seeds)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    sets = scoring_sets(profile, root, split)
    out_path = root / "ablation" / SPLITS[split]
    results: dict = {"scores": {}}
    for variant in variants:
        for seed in seeds:
            path = train_variant(variant, seed, profile, root)
            model = evaluate.model_predictor(load_checkpoint(path), profile.image_size)
            results["scores"].setdefault(variant, {})[str(seed)] = evaluate.score_predictor(model, sets)
            _merge_into(out_path, variant, seed, results["scores"][variant][str(seed)])
    return results


# ---------------------------------------------------------------- the regime map


def labeled_count(profile: Profile) -> int:
    """Labeled training images of ``profile`` (synthetic domains only)."""
    return len(synth.LABELED) * profile.n_labeled


def regime_runs(profile: Profile, ratios: Sequence[float]) -> dict[str, dict]:
    """{run name: settings} of the regime map: the full method with and without strong
    perturbation + CutMix, on ``ratio`` x the labeled images of the unlabeled pool for each
    of ``ratios`` (capped at the pool) and on the whole pool (Table 9's row d and its
    unperturbed twin), every run on the student's schedule."""
    pool, labeled = pool_size(profile), labeled_count(profile)
    sizes = sorted({min(pool, round(r * labeled)) for r in ratios} | {pool})
    runs = {}
    for size in sizes:
        for perturb in (True, False):
            name = train.student_name(
                perturb, perturb, ["loss_feat"], pool_size=None if size == pool else size
            )
            runs[name] = {"pool_size": size, "perturb": perturb, "ratio": size / labeled}
    return runs


def train_regime_run(name: str, run: dict, seed: int, profile: Profile, root: Path) -> Path:
    """Train one regime-map run with ``seed`` unless its checkpoint exists; its path."""
    return train_student_run(
        seeded(name, seed), seed, profile, root, run["perturb"], True, run["pool_size"]
    )


def run_regime_map(
    profile: Profile | str | None = None,
    ratios: Sequence[float] = (1, 4),
    seeds: Sequence[int] | None = None,
    root: str | os.PathLike | None = None,
    split: str = "validation",
) -> dict:
    """Train (or load) every regime-map run x seed, score each on ``split`` with the
    labeled-only model of the same seed, merge into ``<root>/ablation/regime_<split>.json``.

    Returns ``{"runs": {name: settings}, "scores": {name: {seed: {set: {...}}}}}``.
    """
    profile, root = resolve(profile, root)
    seeds = list(seeds if seeds is not None else profile.seeds)
    sets = scoring_sets(profile, root, split)
    runs = regime_runs(profile, ratios)
    out_path = root / "ablation" / f"regime_{split}.json"
    results: dict = {"runs": runs, "scores": {}}
    for seed in seeds:
        for name, run in {"labeled_only": None, **runs}.items():
            if run is None:
                path = train_variant("a", seed, profile, root)
            else:
                path = train_regime_run(name, run, seed, profile, root)
            model = evaluate.model_predictor(load_checkpoint(path), profile.image_size)
            results["scores"].setdefault(name, {})[str(seed)] = evaluate.score_predictor(model, sets)
            _merge_into(out_path, name, seed, results["scores"][name][str(seed)], runs)
    return results


def regime_gains(results: dict, metric: str = "abs_rel") -> dict[str, list[tuple]]:
    """The regime map's points: ``{"with strong perturbation" | "without": [(ratio, gain,
    standard error, seeds), ...]}`` by ratio, where gain = labeled_only - run in ``metric``
    averaged over the sets (positive: the run is better, for AbsRel), paired by seed (the
    seeds both have); the error is sd(gain_s)/sqrt(n) (NaN for one seed)."""
    scores, runs = results["scores"], results["runs"]
    curves: dict[str, list[tuple]] = {"with strong perturbation": [], "without": []}
    sign = 1.0 if metric == "abs_rel" else -1.0

    def mean_over_sets(by_set: dict) -> float:
        return float(np.mean([v[metric] for v in by_set.values()]))

    for name, run in sorted(runs.items(), key=lambda item: item[1]["ratio"]):
        seeds = sorted(set(scores.get(name, {})) & set(scores.get("labeled_only", {})), key=int)
        if not seeds:
            continue
        gains = np.array(
            [
                sign * (mean_over_sets(scores["labeled_only"][s]) - mean_over_sets(scores[name][s]))
                for s in seeds
            ]
        )
        se = float(gains.std(ddof=1) / math.sqrt(len(gains))) if len(gains) > 1 else float("nan")
        curve = "with strong perturbation" if run["perturb"] else "without"
        curves[curve].append((run["ratio"], float(gains.mean()), se, len(gains)))
    return curves


def _merge_into(
    path: Path, variant: str, seed: int, scores: dict, runs: dict | None = None
) -> None:
    """Add one model's scores to the results file (re-read first: runs of other seeds may
    write it too); atomic, after every model, so a killed run keeps what it finished."""
    saved = json.loads(path.read_text()) if path.is_file() else {"scores": {}}
    if runs is not None:
        saved.setdefault("runs", {}).update(runs)
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
    is larger than twice its standard error over seeds: paired, sd(y_s - x_s)/sqrt(n), when
    both variants have the same seeds (seed s of every variant shares its batch order and
    draws), else sqrt(sd_x²/n_x + sd_y²/n_y).
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
        paired = list(scores[first]) == list(scores[second])
        if min(len(x), len(y)) < 2:
            se = float("nan")
        elif paired:
            se = float((y - x).std(ddof=1) / math.sqrt(len(x)))
        else:
            se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
        better = diff < 0 if metric == "abs_rel" else diff > 0
        verdict = (
            "one seed: cannot tell"
            if math.isnan(se)
            else ("exceeds" if abs(diff) > 2 * se else "within")
            + (" seed noise (paired)" if paired else " seed noise")
        )
        # the power of this comparison: the smallest difference that would count
        power = (
            "" if math.isnan(se) else f"; 2 s.e. = {100 * 2 * se / abs(x.mean()):.1f}% of ({first})"
        )
        verdicts.append(
            f"({first}) -> ({second}): mean {metric} {diff:+.4f}"
            + ("" if math.isnan(se) else f" ± {se:.4f}")
            + " "
            f"({'better' if better else 'worse'}; {verdict}{power})"
        )
    return table, verdicts


__all__ = [
    "SPLITS",
    "TABLE9",
    "TRIM",
    "VARIANTS",
    "checkpoint_name",
    "complete_seeds",
    "ensure_pseudo_labels",
    "labeled_count",
    "regime_gains",
    "regime_runs",
    "run_ablation",
    "run_regime_map",
    "scoring_sets",
    "seeded",
    "summarise",
    "train_regime_run",
    "train_student_run",
    "train_variant",
]

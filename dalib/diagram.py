"""The map of the whole method: teacher -> pseudo labels -> student, drawn by code.

One picture of Depth Anything as dalib builds it: which data each model learns from, where
each loss, the strong perturbations and the frozen encoder enter, and which notebook builds
each part. Notebook 00 shows it and the README embeds it as ``docs/pipeline_map.png``
(``python -m dalib.diagram docs/pipeline_map.png`` redraws that file), so the picture and the
code stay one thing: the nodes and arrows below are the only description of it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


@dataclass(frozen=True)
class Node:
    """One box: centre (x, y) in axes units (0..11.6 x 0..5.8), its text, its notebooks."""

    x: float
    y: float
    text: str
    notebooks: tuple[int, ...]
    kind: str  # "data", "model", "loss", "frozen" or "use": sets the colour


KIND_COLORS = {
    "data": "#dbe9f6",
    "model": "#fde0c5",
    "loss": "#f6d5d5",
    "frozen": "#dcdcdc",
    "use": "#d9f0d3",
}

NODES: dict[str, Node] = {
    "init": Node(1.0, 3.2, "pretrained encoder\nDINOv2 / offline stand-in", (3,), "frozen"),
    "labeled": Node(3.4, 5.2, "labeled images + depth\n(3 domains; paper: 1.5M)", (0, 3), "data"),
    "unlabeled": Node(3.4, 3.2, "unlabeled images\n(pool 26.7x; paper: 62M)", (0, 4), "data"),
    "perturb": Node(3.4, 1.3, "strong perturbation:\ncolour, blur + CutMix", (2,), "loss"),
    "teacher": Node(5.8, 5.2, "teacher T\nViT + DPT head", (3,), "model"),
    "pseudo": Node(5.8, 3.2, "pseudo labels\nT(clean image)", (4,), "data"),
    "student": Node(5.8, 1.3, "student S\nsame model, re-initialised", (5,), "model"),
    "loss_l": Node(8.2, 5.2, "L_l: affine-invariant\n+ gradient matching", (1, 3), "loss"),
    "loss_u": Node(8.2, 2.5, "L_u: affine-invariant\nvs pseudo labels", (1, 5), "loss"),
    "loss_feat": Node(8.2, 1.0, "L_feat: 1 - cos(f_S, f_frozen)\nwhere cos <= α", (6,), "loss"),
    "frozen": Node(10.6, 1.0, "frozen encoder\n(the pretrained one)", (6,), "frozen"),
    "eval": Node(10.6, 3.0, "zero-shot evaluation:\nTable 9, regime map", (7,), "use"),
    "transfer": Node(10.6, 4.6, "metric depth, segmentation,\nreleased weights", (8, 9, 10), "use"),
}
"""Every box of the map by key."""

EDGES: tuple[tuple[str, str, str], ...] = (
    ("init", "teacher", "initialise"),
    ("init", "student", "initialise"),
    ("labeled", "teacher", "train"),
    ("teacher", "loss_l", ""),
    ("teacher", "pseudo", "label"),
    ("unlabeled", "pseudo", "clean"),
    ("unlabeled", "perturb", ""),
    ("perturb", "student", "hard view"),
    ("labeled", "student", "+ L_l"),
    ("pseudo", "loss_u", "target"),
    ("student", "loss_u", ""),
    ("student", "loss_feat", "features"),
    ("frozen", "loss_feat", ""),
    ("student", "eval", ""),
    ("eval", "transfer", "its encoder"),
)
"""Arrows (from, to, label): data or weights flowing from one box to the next."""

LABEL_AT = {("init", "teacher"): 0.3, ("init", "student"): 0.3, ("labeled", "student"): 0.3}
"""Where along an arrow its label sits (0: start, 1: end; 0.5 unless listed): off crossings."""

BOX_W, BOX_H = 1.8, 0.72


def pipeline_map(title: str = "Depth Anything as dalib builds it") -> Figure:
    """The method as one figure: boxes coloured by kind (data, model, loss, frozen, use),
    each with the notebooks that build it, and arrows for what flows between them."""
    unknown = {key for edge in EDGES for key in edge[:2]} - set(NODES)
    if unknown:
        raise ValueError(f"EDGES name boxes that NODES lacks: {sorted(unknown)}")
    fig = Figure(figsize=(13.5, 6.6))
    ax = fig.add_axes((0, 0, 1, 0.93))
    ax.set_xlim(-0.05, 11.65)
    ax.set_ylim(0.15, 5.75)
    ax.axis("off")
    patches = {}
    for key, node in NODES.items():
        box = FancyBboxPatch(
            (node.x - BOX_W / 2, node.y - BOX_H / 2),
            BOX_W,
            BOX_H,
            boxstyle="round,pad=0.05",
            facecolor=KIND_COLORS[node.kind],
            edgecolor="0.3",
        )
        ax.add_patch(box)
        patches[key] = box
        ax.text(node.x, node.y + 0.06, node.text, ha="center", va="center", fontsize=8.5)
        badge = "nb " + ", ".join(f"{n:02d}" for n in node.notebooks)
        ax.text(
            node.x + BOX_W / 2,
            node.y - BOX_H / 2 - 0.02,
            badge,
            ha="right",
            va="top",
            fontsize=7,
            color="0.25",
            style="italic",
        )
    for start, end, label in EDGES:
        arrow = FancyArrowPatch(
            posA=(NODES[start].x, NODES[start].y),
            posB=(NODES[end].x, NODES[end].y),
            patchA=patches[start],
            patchB=patches[end],
            arrowstyle="-|>",
            mutation_scale=12,
            color="0.35",
            lw=1.0,
            connectionstyle="arc3,rad=0.0",
        )
        ax.add_patch(arrow)
        if label:
            t = LABEL_AT.get((start, end), 0.5)
            mx = (1 - t) * NODES[start].x + t * NODES[end].x
            my = (1 - t) * NODES[start].y + t * NODES[end].y
            ax.text(
                mx,
                my + 0.1,
                label,
                ha="center",
                fontsize=7.5,
                color="0.2",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
            )
    for i, (kind, color) in enumerate(KIND_COLORS.items()):
        ax.add_patch(
            FancyBboxPatch(
                (0.1 + 1.25 * i, 0.22),
                0.3,
                0.16,
                facecolor=color,
                edgecolor="0.3",
                boxstyle="round,pad=0.02",
            )
        )
        ax.text(0.5 + 1.25 * i, 0.30, kind, va="center", fontsize=8)
    fig.suptitle(title + ": the teacher labels the pool, the student learns from both", fontsize=11)
    return fig


if __name__ == "__main__":  # python -m dalib.diagram docs/pipeline_map.png
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dalib.diagram OUT.png")
    pipeline_map().savefig(sys.argv[1], dpi=110)
    print(f"wrote {sys.argv[1]}")


__all__ = ["EDGES", "KIND_COLORS", "LABEL_AT", "NODES", "Node", "pipeline_map"]

"""Convert Hugging Face ``transformers`` Depth Anything weights to the released layout.

``transformers.DepthAnythingForDepthEstimation`` (e.g. the ``LiheYoung/depth-anything-small-hf``
models) stores the same network under other names: separate query/key/value projections, a
``neck`` whose fusion layers run coarse to fine (layer 0 = ``refinenet4``) and a ``head`` with
conv1..conv3. :func:`official_from_transformers` renames (and concatenates q, k, v into
``qkv``) so that ``dalib.model.load_official_checkpoint`` loads the result strictly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

_RENAMES = [  # (transformers regex, released-layout template)
    (r"backbone\.embeddings\.cls_token", "pretrained.cls_token"),
    (r"backbone\.embeddings\.mask_token", "pretrained.mask_token"),
    (r"backbone\.embeddings\.position_embeddings", "pretrained.pos_embed"),
    (
        r"backbone\.embeddings\.patch_embeddings\.projection\.(\w+)",
        r"pretrained.patch_embed.proj.\1",
    ),
    (r"backbone\.encoder\.layer\.(\d+)\.norm(\d)\.(\w+)", r"pretrained.blocks.\1.norm\2.\3"),
    (
        r"backbone\.encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.(\w+)",
        r"pretrained.blocks.\1.attn.proj.\2",
    ),
    (
        r"backbone\.encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1",
        r"pretrained.blocks.\1.ls\2.gamma",
    ),
    (r"backbone\.encoder\.layer\.(\d+)\.mlp\.(fc\d)\.(\w+)", r"pretrained.blocks.\1.mlp.\2.\3"),
    (r"backbone\.layernorm\.(\w+)", r"pretrained.norm.\1"),
    (r"neck\.reassemble_stage\.layers\.(\d)\.projection\.(\w+)", r"depth_head.projects.\1.\2"),
    (r"neck\.reassemble_stage\.layers\.(\d)\.resize\.(\w+)", r"depth_head.resize_layers.\1.\2"),
    (r"head\.conv1\.(\w+)", r"depth_head.scratch.output_conv1.\1"),
    (r"head\.conv2\.(\w+)", r"depth_head.scratch.output_conv2.0.\1"),
    (r"head\.conv3\.(\w+)", r"depth_head.scratch.output_conv2.2.\1"),
]
_FUSION = re.compile(
    r"neck\.fusion_stage\.layers\.(\d)\.(projection|residual_layer(\d)\.convolution(\d))\.(\w+)"
)
_CONVS = re.compile(r"neck\.convs\.(\d)\.weight")
_QKV = re.compile(  # the checkpoints' names, and transformers 5's in memory (q_proj, ...)
    r"backbone\.encoder\.layer\.(\d+)\.attention\.(?:attention\.)?(query|key|value|[qkv]_proj)\.(\w+)"
)
_QKV_PARTS = {"q_proj": "query", "k_proj": "key", "v_proj": "value"}


def _rename(key: str) -> str:
    for pattern, template in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, template, key)
    if match := _CONVS.fullmatch(key):
        return f"depth_head.scratch.layer{int(match[1]) + 1}_rn.weight"
    if match := _FUSION.fullmatch(key):
        level = 4 - int(match[1])  # transformers fuses coarse -> fine
        part = "out_conv" if match[2] == "projection" else f"resConfUnit{match[3]}.conv{match[4]}"
        return f"depth_head.scratch.refinenet{level}.{part}.{match[5]}"
    raise KeyError(f"no released-layout name for transformers key {key!r}")


def official_from_transformers(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """transformers ``DepthAnythingForDepthEstimation`` state dict -> released layout."""
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in state.items():
        if match := _QKV.fullmatch(key):
            qkv.setdefault((match[1], match[3]), {})[_QKV_PARTS.get(match[2], match[2])] = value
        else:
            out[_rename(key)] = value
    for (block, kind), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise KeyError(
                f"block {block} {kind}: expected query, key and value, got {sorted(parts)}"
            )
        out[f"pretrained.blocks.{block}.attn.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    return out


__all__ = ["official_from_transformers"]

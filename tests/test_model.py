"""Tests of dalib.model: released layout, strict loading, forward, predict, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dalib.encoder import DinoV2Encoder
from dalib.model import (
    SIZES,
    DepthAnything,
    checkpoint_metadata,
    describe,
    export_official_state_dict,
    load_checkpoint,
    load_official_checkpoint,
    official_key_shapes,
    predict,
    predict_batch,
    save_checkpoint,
)

# Released facts (LiheYoung/Depth-Anything depth_anything/dpt.py + DINOv2 hub models), written
# out here independently of dalib: (ViT dim, blocks, DPT features, out_channels).
RELEASED = {
    "vits": (384, 12, 64, (48, 96, 192, 384)),
    "vitb": (768, 12, 128, (96, 192, 384, 768)),
    "vitl": (1024, 24, 256, (256, 512, 1024, 1024)),
}


def released_shapes(dim: int, depth: int, feat: int, oc: tuple[int, ...]) -> dict[str, tuple]:
    """Key -> shape of depth_anything_vit?14.pth, built from the released module layout."""
    s = {
        "pretrained.cls_token": (1, 1, dim),
        "pretrained.pos_embed": (1, 37 * 37 + 1, dim),
        "pretrained.mask_token": (1, dim),
        "pretrained.patch_embed.proj.weight": (dim, 3, 14, 14),
        "pretrained.patch_embed.proj.bias": (dim,),
        "pretrained.norm.weight": (dim,),
        "pretrained.norm.bias": (dim,),
    }
    for b in range(depth):
        p = f"pretrained.blocks.{b}."
        s.update(
            {
                p + "norm1.weight": (dim,),
                p + "norm1.bias": (dim,),
                p + "attn.qkv.weight": (3 * dim, dim),
                p + "attn.qkv.bias": (3 * dim,),
                p + "attn.proj.weight": (dim, dim),
                p + "attn.proj.bias": (dim,),
                p + "ls1.gamma": (dim,),
                p + "norm2.weight": (dim,),
                p + "norm2.bias": (dim,),
                p + "mlp.fc1.weight": (4 * dim, dim),
                p + "mlp.fc1.bias": (4 * dim,),
                p + "mlp.fc2.weight": (dim, 4 * dim),
                p + "mlp.fc2.bias": (dim,),
                p + "ls2.gamma": (dim,),
            }
        )
    h = "depth_head."
    for i, c in enumerate(oc):
        s[f"{h}projects.{i}.weight"] = (c, dim, 1, 1)
        s[f"{h}projects.{i}.bias"] = (c,)
        s[f"{h}scratch.layer{i + 1}_rn.weight"] = (feat, c, 3, 3)
    for i, k in ((0, 4), (1, 2), (3, 3)):  # ConvTranspose weights are (in, out, k, k)
        s[f"{h}resize_layers.{i}.weight"] = (oc[i], oc[i], k, k)
        s[f"{h}resize_layers.{i}.bias"] = (oc[i],)
    for r in range(1, 5):
        p = f"{h}scratch.refinenet{r}."
        s[p + "out_conv.weight"], s[p + "out_conv.bias"] = (feat, feat, 1, 1), (feat,)
        for unit in (1, 2):
            for conv in (1, 2):
                s[f"{p}resConfUnit{unit}.conv{conv}.weight"] = (feat, feat, 3, 3)
                s[f"{p}resConfUnit{unit}.conv{conv}.bias"] = (feat,)
    s.update(
        {
            f"{h}scratch.output_conv1.weight": (feat // 2, feat, 3, 3),
            f"{h}scratch.output_conv1.bias": (feat // 2,),
            f"{h}scratch.output_conv2.0.weight": (32, feat // 2, 3, 3),
            f"{h}scratch.output_conv2.0.bias": (32,),
            f"{h}scratch.output_conv2.2.weight": (1, 32, 1, 1),
            f"{h}scratch.output_conv2.2.bias": (1,),
        }
    )
    return s


def meta_model(encoder: str) -> DepthAnything:
    with torch.device("meta"):
        return DepthAnything(encoder)


def uninitialised(encoder: str) -> DepthAnything:
    """A CPU model with uninitialised weights (skips random init: cheap for big sizes)."""
    return meta_model(encoder).to_empty(device="cpu")


def random_state(
    shapes: dict[str, tuple], device: str = "cpu", seed: int = 0
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    if device == "meta":
        return {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    return {k: torch.randn(v, generator=g) * 0.02 for k, v in shapes.items()}


@pytest.fixture(scope="module")
def tiny() -> DepthAnything:
    torch.manual_seed(0)
    return DepthAnything("tiny", img_size=56).eval()


@pytest.mark.parametrize("encoder", ["vits", "vitb", "vitl"])
def test_released_layout_exactly(encoder):
    expected = released_shapes(*RELEASED[encoder])
    assert len(expected) == {"vits": 239, "vitb": 239, "vitl": 407}[encoder]
    assert official_key_shapes(meta_model(encoder)) == expected


@pytest.mark.parametrize("encoder", ["vitb", "vitl"])
def test_strict_load_big_sizes_on_meta(encoder):
    model = meta_model(encoder)
    load_official_checkpoint(model, random_state(released_shapes(*RELEASED[encoder]), "meta"))


def test_load_vits_strictly_and_export_round_trip():
    state = random_state(released_shapes(*RELEASED["vits"]))
    model = load_official_checkpoint(uninitialised("vits"), state)
    assert torch.equal(
        model.pretrained.blocks[3].attn.qkv.weight, state["pretrained.blocks.3.attn.qkv.weight"]
    )
    assert torch.equal(
        model.depth_head.scratch.output_conv2[2].weight,
        state["depth_head.scratch.output_conv2.2.weight"],
    )
    exported = export_official_state_dict(model)
    assert {k: tuple(v.shape) for k, v in exported.items()} == released_shapes(*RELEASED["vits"])
    unused = "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight"
    assert not exported[unused].any()
    for key, value in exported.items():
        if key != unused and "refinenet4.resConfUnit1" not in key:
            assert torch.equal(value, state[key]), key
    again = load_official_checkpoint(uninitialised("vits"), exported)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_unused_released_block_is_not_a_parameter():
    names = [n for n, _ in DepthAnything("micro").named_parameters()]
    assert not any("refinenet4.resConfUnit1" in n for n in names)
    model = DepthAnything("micro")
    assert not model.pretrained.mask_token.requires_grad
    model(torch.randn(2, 3, 28, 42)).mean().backward()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_strictness_names_the_problem():
    shapes = released_shapes(*RELEASED["vitl"])
    model = meta_model("vitl")
    state = random_state(shapes, "meta")
    missing = dict(state)
    del missing["pretrained.blocks.7.ls2.gamma"]
    with pytest.raises(ValueError, match=r"missing keys.*pretrained\.blocks\.7\.ls2\.gamma"):
        load_official_checkpoint(model, missing)
    extra = {**state, "depth_head.scratch.extra.weight": torch.empty(1, device="meta")}
    with pytest.raises(ValueError, match=r"unexpected keys.*scratch\.extra\.weight"):
        load_official_checkpoint(model, extra)
    wrong = {**state, "depth_head.projects.1.bias": torch.empty(7, device="meta")}
    with pytest.raises(
        ValueError, match=r"shape mismatches.*projects\.1\.bias: file \(7,\) vs model \(512,\)"
    ):
        load_official_checkpoint(model, wrong)
    bad_unused = {
        **state,
        "depth_head.scratch.refinenet4.resConfUnit1.conv2.bias": torch.empty(3, device="meta"),
    }
    with pytest.raises(ValueError, match=r"refinenet4\.resConfUnit1\.conv2\.bias"):
        load_official_checkpoint(model, bad_unused)


def test_wrong_size_checkpoint_is_recognised():
    vitb = random_state(released_shapes(*RELEASED["vitb"]), "meta")
    with pytest.raises(ValueError, match="looks like a vitb checkpoint, model is vits"):
        load_official_checkpoint(meta_model("vits"), vitb)


def test_official_pth_file_and_bad_files(tmp_path, tiny):
    path = tmp_path / "depth_anything_tiny.pth"
    torch.save(export_official_state_dict(tiny), path)
    model = load_official_checkpoint(DepthAnything("tiny", img_size=56), path).eval()
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tiny(x), rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth"):
        load_official_checkpoint(model, tmp_path / "nothere.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pth"):
        load_official_checkpoint(model, tmp_path / "junk.pth")


def test_parameter_counts_match_table():
    trainable = {
        "vits": 24_710_849,
        "vitb": 97_174_849,
        "vitl": 334_134_465,
        "tiny": 3_461_377,
        "micro": 1_134_729,
    }
    for encoder, count in trainable.items():
        model = meta_model(encoder)
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count, encoder
    released = sum(int(np.prod(s)) for s in released_shapes(*RELEASED["vits"]).values())
    assert round(released / 1e6, 1) == 24.8  # the paper's ViT-S count


def test_readout_layers():
    assert DepthAnything("micro").config.layers == (0, 1, 2, 3)
    assert meta_model("vits").config.layers == (8, 9, 10, 11)
    assert meta_model("vitl").config.layers == (20, 21, 22, 23)
    with torch.device("meta"):
        assert DepthAnything("vitb", layers="v2").config.layers == (2, 5, 8, 11)
        assert DepthAnything("vitl", layers="v2").config.layers == (4, 11, 17, 23)
        assert DepthAnything("tiny", layers="v2").config.layers[-1] == 5
    with pytest.raises(ValueError, match="layers"):
        DepthAnything("micro", layers=(0, 1, 2, 9))


@pytest.mark.parametrize(
    "encoder,shape",
    [("tiny", (2, 3, 56, 98)), ("micro", (1, 3, 42, 28)), ("micro", (3, 3, 14, 14))],
)
def test_forward_shapes(encoder, shape):
    model = DepthAnything(encoder).eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
        feats = model.forward_features(torch.randn(shape))
    assert out.shape == (shape[0], shape[2], shape[3]) and (out >= 0).all()
    dim = SIZES[encoder].embed_dim
    assert [tuple(f.shape) for f in feats] == [(shape[0], dim, shape[2] // 14, shape[3] // 14)] * 4


@pytest.mark.parametrize("shape", [(1, 3, 50, 56), (1, 3, 56, 57), (3, 56, 56), (1, 1, 56, 56)])
def test_wrong_input_size_is_a_clear_error(tiny, shape):
    with pytest.raises(ValueError, match="multiples of 14"):
        tiny(torch.randn(shape))


def test_fused_attention_and_layerscale_init():
    model = DepthAnything("micro")
    assert all(block.attn.fused_attn for block in model.pretrained.blocks)
    assert torch.equal(model.pretrained.blocks[0].ls1.gamma, torch.ones(128))


def test_position_embedding_identity_and_dinov2_resampling():
    enc = DinoV2Encoder(384, 1, 6, img_size=518).eval()  # the ViT-S 37x37 table, one block
    with torch.no_grad():
        assert enc.position_embedding((37, 37), torch.float32) is enc.pos_embed
        table = enc.position_embedding((20, 30), torch.float32)
        # DINOv2 hub models: bicubic, antialias off, scale factor (grid + 0.1) / 37
        grid = enc.pos_embed[0, 1:].reshape(37, 37, 384).permute(2, 0, 1)[None]
        manual = F.interpolate(grid, scale_factor=(20.1 / 37, 30.1 / 37), mode="bicubic")
        torch.testing.assert_close(table[0, 1:], manual[0].permute(1, 2, 0).reshape(600, 384))
        by_size = F.interpolate(grid, size=(20, 30), mode="bicubic")
        assert not torch.allclose(manual, by_size, atol=1e-6)  # the 0.1 offset matters
        assert torch.equal(table[0, 0], enc.pos_embed[0, 0])
        assert enc.position_embedding((20, 30), torch.float32) is table  # cached
        enc.pos_embed.mul_(2)  # new weights invalidate the cache
        assert torch.allclose(enc.position_embedding((20, 30), torch.float32), 2 * table)
    assert (
        enc.position_embedding((20, 30), torch.float32).grad_fn is not None
    )  # training: recomputed


def test_channels_last_head_gives_same_output(tiny):
    x = torch.randn(2, 3, 56, 70)
    with torch.no_grad():
        reference = tiny(x)
        fast = DepthAnything("tiny", img_size=56).eval()
        fast.load_state_dict(tiny.state_dict())
        fast.depth_head.to(memory_format=torch.channels_last)
        torch.testing.assert_close(fast(x), reference, rtol=1e-4, atol=1e-5)


def test_predict_odd_sizes(tiny):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, size=s, dtype=np.uint8)
        for s in [(37, 53, 3), (61, 29, 3), (37, 53, 3)]
    ]
    out = predict(tiny, images[0])
    assert out.shape == (37, 53) and out.dtype == np.float32 and np.isfinite(out).all()
    batch = predict_batch(tiny, images, input_size=42, batch_size=2)
    assert [b.shape for b in batch] == [(37, 53), (61, 29), (37, 53)]
    np.testing.assert_allclose(
        batch[1], predict(tiny, images[1], input_size=42), rtol=1e-5, atol=1e-6
    )
    assert tiny.training is False
    with pytest.raises(ValueError, match="uint8"):
        predict(tiny, images[0].astype(np.float32))


def test_predict_matches_manual_pipeline(tiny):
    image = np.random.default_rng(1).integers(0, 256, size=(30, 45, 3), dtype=np.uint8)
    # lower-bound resize to >= 56 keeping aspect: 56 x 84 (both multiples of 14)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(56, 84), mode="bicubic")
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    with torch.no_grad():
        disp = tiny((x - mean[:, None, None]) / std[:, None, None])
    expected = F.interpolate(disp[None], size=(30, 45), mode="bilinear")[0, 0].numpy()
    np.testing.assert_allclose(predict(tiny, image), expected, rtol=1e-5, atol=1e-6)


def test_save_load_checkpoint(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "sub" / "teacher.safetensors", {"step": "12"})
    assert not list(path.parent.glob(".*tmp"))
    model = load_checkpoint(path)
    assert model.config == tiny.config and checkpoint_metadata(path)["step"] == "12"
    for (k, a), b in zip(tiny.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(1, 3, 56, 42)
    with torch.no_grad():
        assert torch.equal(model(x), tiny(x))


def test_bad_checkpoints_name_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ValueError, match=r"corrupt\.safetensors"):
        load_checkpoint(corrupt)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(
        ValueError, match=r"foreign\.safetensors.*not a dalib\.DepthAnything/1 checkpoint"
    ):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_local_dinov2_weights(tmp_path):
    source = DepthAnything("tiny")
    state = {k: v for k, v in source.pretrained.state_dict().items() if k != "mask_token"}
    torch.save(state, tmp_path / "dinov2_tiny.pth")
    model = DepthAnything("tiny", pretrained_encoder=tmp_path / "dinov2_tiny.pth")
    assert torch.equal(
        model.pretrained.blocks[2].mlp.fc1.weight, source.pretrained.blocks[2].mlp.fc1.weight
    )
    smaller = DepthAnything("tiny", img_size=56, pretrained_encoder=tmp_path / "dinov2_tiny.pth")
    assert smaller.pretrained.pos_embed.shape == (1, 17, 192)  # 7x7 table resampled to 4x4
    with pytest.raises(ValueError, match="no released DINOv2 weights"):
        DepthAnything("micro", pretrained_encoder="dinov2")


def test_describe_lists_every_stage(tiny):
    text = describe(tiny, 56)
    for needle in [
        "(1, 192, 4, 4)",
        "head.resize_layers[3]",
        "(1, 32, 2, 2)",
        "head.scratch.refinenet1",
        "(1, 32, 32, 32)",
        "(1, 1, 56, 56)",
        "total 3,455,041",
    ]:  # 3,461,377 - (50 - 17) * 192 (4x4 table)
        assert needle in text, needle


def test_matches_transformers_reference():
    transformers = pytest.importorskip("transformers")
    from dalib.convert import official_from_transformers

    backbone = transformers.Dinov2Config(
        image_size=56,
        patch_size=14,
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=3,
        out_indices=[3, 4, 5, 6],
        layerscale_value=1.0,
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        fusion_hidden_size=32,
        neck_hidden_sizes=[24, 48, 96, 192],
        reassemble_hidden_size=192,
        patch_size=14,
        head_hidden_size=32,
    )
    torch.manual_seed(0)
    reference = transformers.DepthAnythingForDepthEstimation(config).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model = load_official_checkpoint(
        DepthAnything("tiny", img_size=56), official_from_transformers(reference.state_dict())
    ).eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(
            model(x), reference(pixel_values=x).predicted_depth, rtol=1e-4, atol=1e-5
        )


def test_cached_positions_serve_frozen_encoder_training():
    torch.manual_seed(0)
    model = DepthAnything("micro")
    image = np.zeros((40, 60, 3), np.uint8)
    predict(model, image, input_size=56)  # caches the 4x6 position table in inference mode
    model.pretrained.requires_grad_(False)
    model.train()
    model(torch.randn(2, 3, 56, 84)).mean().backward()  # must not hit an inference-tensor error
    assert model.depth_head.projects[0].weight.grad is not None


def test_timm_dinov2_weights_through_the_cache(monkeypatch, tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    import dalib.hub

    with torch.device("meta"):  # skip timm's random init, fill cheaply instead
        vit = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False, num_classes=0)
    vit.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    for p in vit.parameters():
        p.data.copy_(torch.randn(p.shape, generator=generator))
    save_file(vit.state_dict(), str(tmp_path / "model.safetensors"))
    monkeypatch.setattr(
        dalib.hub, "dinov2_weights_file", lambda name: tmp_path / "model.safetensors"
    )
    model = DepthAnything("vits", pretrained_encoder="dinov2")
    for key, value in vit.state_dict().items():
        assert torch.equal(model.pretrained.state_dict()[key], value), key
    with pytest.raises(ValueError, match="do not fit 'tiny'"):
        DepthAnything("tiny", pretrained_encoder=tmp_path / "model.safetensors")


def test_too_elongated_image_is_refused_before_resizing():
    from dalib.inference import MAX_ASPECT, inference_size

    assert inference_size(14, 14 * MAX_ASPECT, 14) == (14, 14 * MAX_ASPECT)
    with pytest.raises(ValueError, match=r"2x2000 is too elongated"):
        inference_size(2, 2000, 518)


def test_transformers_attention_names_of_both_generations_convert_alike():
    """Hub checkpoints name a block's attention ``attention.attention.{query,key,value}`` and
    ``attention.output.dense``; transformers 5 holds them as ``attention.{q,k,v,o}_proj``."""
    from dalib.convert import official_from_transformers

    g = torch.Generator().manual_seed(0)
    parts = {k: (torch.randn(6, 6, generator=g), torch.randn(6, generator=g)) for k in "qkvo"}
    old, new = {}, {}
    for k, name in zip("qkv", ("query", "key", "value")):
        for kind, tensor in zip(("weight", "bias"), parts[k]):
            old[f"backbone.encoder.layer.3.attention.attention.{name}.{kind}"] = tensor
            new[f"backbone.encoder.layer.3.attention.{k}_proj.{kind}"] = tensor
    for kind, tensor in zip(("weight", "bias"), parts["o"]):
        old[f"backbone.encoder.layer.3.attention.output.dense.{kind}"] = tensor
        new[f"backbone.encoder.layer.3.attention.o_proj.{kind}"] = tensor
    a, b = official_from_transformers(old), official_from_transformers(new)
    assert a.keys() == b.keys() == {
        f"pretrained.blocks.3.attn.{m}.{kind}" for m in ("qkv", "proj") for kind in ("weight", "bias")
    }
    assert all(torch.equal(a[key], b[key]) for key in a)
    torch.testing.assert_close(a["pretrained.blocks.3.attn.qkv.weight"][6:12], parts["k"][0])

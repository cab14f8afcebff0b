"""The stand-in for DINOv2: one cached pretraining, the encoder initialisation it gives."""

from pathlib import Path

import pytest
import torch

from dalib import standin
from dalib.checkpoint import save_checkpoint
from dalib.config import get_profile, run_paths
from dalib.encoder import normalize
from dalib.model import DepthAnything, load_checkpoint
from dalib.segmentation import Segmenter
from dalib.train import student_name, train_teacher

PROFILE = get_profile("fast").replace(
    n_unlabeled=3, n_photo_crops=3, n_labeled=4, batch_size=2, pretrained_encoder="synthetic"
)


def _same_encoder(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_teacher_starts_from_the_cached_stand_in(tmp_path):
    frozen_lr = {"steps": 1, "lr_encoder": 0.0, "lr_decoder": 0.0, "validate": False}
    teacher = train_teacher(PROFILE, root=tmp_path, **frozen_lr)
    frozen = standin.train_semantic_encoder(PROFILE, root=tmp_path)  # cached: not retrained
    assert standin.semantic_encoder_path(tmp_path).is_file()
    # with zero learning rates the weights are still the initial ones after a step
    # (AdamW's weight decay scales with the learning rate, so it does not move them either)
    assert _same_encoder(teacher.pretrained, frozen.encoder)
    random = train_teacher(
        PROFILE.replace(pretrained_encoder=None),
        root=tmp_path,
        name="r",
        **frozen_lr,
    )
    assert not _same_encoder(random.pretrained, frozen.encoder)
    # the head's initial weights come from the seed only, not from the pretraining's draws
    heads = [m.depth_head.state_dict() for m in (teacher, random)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])


def test_init_encoder_from_paths_and_clear_errors(tmp_path):
    source = DepthAnything("micro")
    path = tmp_path / "depth.safetensors"
    save_checkpoint(source, path)
    model = standin.init_encoder(DepthAnything("micro"), path, PROFILE, tmp_path)
    assert _same_encoder(model.pretrained, source.pretrained)
    assert standin.init_encoder(model, None, PROFILE, tmp_path) is model
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        standin.init_encoder(model, tmp_path / "missing.safetensors", PROFILE, tmp_path)
    with pytest.raises(ValueError, match="does not fit"):
        standin.init_encoder(DepthAnything("tiny"), path, PROFILE, tmp_path)
    assert load_checkpoint(path).config.encoder == "micro"


def test_student_names_say_what_was_trained():
    class Feat:
        __name__ = "loss_feat"

    class Seg:
        __name__ = "loss_seg"

    assert student_name(True, True, [Feat()]) == "student"  # the full method
    assert student_name(True, True) == "student_perturb"
    assert student_name(False, False) == "student_plain"
    assert student_name(False, False, [Feat()]) == "student_plain_feat"
    assert student_name(True, False, [Feat(), Seg()]) == "student_nocutmix_feat_aux"
    assert student_name(True, True, [Seg()]) == "student_perturb_aux"
    assert student_name(True, True, ["loss_feat"], trim=0.1) == "student_trim10"
    assert student_name(False, False, ["loss_feat"], pool_size=1200) == "student_plain_feat_u1200"
    root = Path("runs") / "fast"
    assert run_paths(root, "student")["final_path"] == root / "checkpoints" / "student.safetensors"


def test_masked_image_model_learns_masked_pixels_and_caches(tmp_path):
    encoder = Segmenter("micro", 0).encoder
    model = standin.MaskedImageModel(encoder)
    images = torch.rand(2, 3, 28, 28)
    masks = torch.tensor([[True, False, False, True], [False, True, True, False]])
    encoder.mask_token.requires_grad_(True)
    loss = model(images, masks)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert encoder.mask_token.grad is not None and encoder.mask_token.grad.abs().sum() > 0
    # a masked patch's own pixels reach the encoder only as the mask token
    with torch.no_grad():
        tokens = encoder.tokens(normalize(images), masks)
        other = images.clone()
        other[0, :, :14, :14] = 0.5  # patch 0 of image 0, masked
        assert torch.equal(tokens, encoder.tokens(normalize(other), masks))

    profile = PROFILE.replace(pretrained_encoder="mim")
    first = standin.train_mim_encoder(profile, root=tmp_path)
    stamp = standin.mim_encoder_path(tmp_path).stat().st_mtime_ns
    again = standin.init_encoder(DepthAnything("micro"), "mim", profile, tmp_path)
    assert standin.mim_encoder_path(tmp_path).stat().st_mtime_ns == stamp  # cached
    assert _same_encoder(again.pretrained, first.encoder)
    assert first.head is None and not first.encoder.mask_token.requires_grad

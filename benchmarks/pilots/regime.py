"""The regime pilots 2, 4 and 5 ran, fixed here (not read from the ``full`` profile, so that a
later change of the profile does not change what a pilot's numbers mean)."""

from dalib import config


def pilot_profile(**changes) -> config.Profile:
    """``full`` with the settings of the pilots: micro at 98 px from the semantic stand-in,
    1,200 labeled images, a 32,000-image pool, 2,000 steps of 8 (+ 16) for every model."""
    settings = {
        "encoder": "micro",
        "n_labeled": 400,
        "n_unlabeled": 3800,
        "n_photo_crops": 1600,
        "n_eval": 200,
        "batch_size": 8,
        "teacher_steps": 2000,
        "student_steps": 2000,
        "semantic_steps": 2000,
        "eval_every": 500,
        "checkpoint_every": 500,
        "pretrained_encoder": "synthetic",
    }
    return config.get_profile("full").replace(**{**settings, **changes})


# The full profile as pilots 1 and 3 (and benchmarks/study_model.py) found it, before this
# regime: 1,200 labeled images, 8 x 300 unlabeled + 400 photo crops, teachers 1,000 x 16.
EARLIER = {
    "n_labeled": 400,
    "n_unlabeled": 300,
    "n_photo_crops": 400,
    "batch_size": 16,
    "teacher_steps": 1000,
    "semantic_steps": 1500,
    "eval_every": 250,
}

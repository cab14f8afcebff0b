"""The fifteen domains of the synthetic world: what each one looks like, as a DomainSpec.

Domains play the roles of the paper's datasets. ``LABELED``: clean "sensor" sets the teacher
learns from. ``UNLABELED``: more diverse (photo textures, clutter, lighting, noise), only
their images are used. ``VALIDATION``: never trained on; every choice of settings (budgets,
model size, margins) is made on them. ``HELD_OUT``: zero-shot evaluation for the final
tables only, never trained on and never used to choose anything; the same kinds of
primitives in new arrangements and looks.

============== ========= ======= ========= ===================================================
name           group     scene   depth     what is special
============== ========= ======= ========= ===================================================
indoor_rooms   labeled   indoor  <= 10 m   furnished rooms, procedural textures, ceiling light
street_drive   labeled   outdoor <= 80 m   KITTI-like road between buildings, car-height camera
object_field   labeled   outdoor <= 80 m   open ground with boxes, balls, barrels; clear day
photo_rooms    unlabeled indoor  <= 10 m   photo textures, coloured light, clutter, tilted camera
corridors      unlabeled indoor  <= 10 m   long narrow rooms, dim light, sensor noise
warehouse      unlabeled indoor  <= 10 m   stacked crates and barrels, low light, vignetting
photo_city     unlabeled outdoor <= 80 m   photo-textured streets, haze, roll, any sun
park           unlabeled outdoor <= 80 m   trees and hills on grass/gravel photos, low sun
market         unlabeled outdoor <= 80 m   colourful photo-textured stalls and poles, overcast
cellar         unlabeled indoor  <= 10 m   low vaulted cellars, barrels, columns, warm lamp
dunes          unlabeled outdoor <= 80 m   bare rolling ground, few objects, high camera
atrium         validation indoor <= 10 m   tall atrium, columns, crates, balls, tinted light
quarry         validation outdoor <= 80 m  plinths, stacks and trees on open ground, haze
gallery        held_out  indoor  <= 10 m   tall hall, grid of pillars and plinths with spheres
ruins          held_out  outdoor <= 80 m   walls and columns of stacked blocks at dusk, fog
============== ========= ======= ========= ===================================================
"""

from __future__ import annotations

from dalib.world.scenes import GROUPS, DomainSpec
from dalib.world.textures import PHOTOS

_LABELED, _UNLABELED, _VALIDATION, _HELD_OUT = GROUPS
_ROOM = {"layout": "room", "max_depth": 10.0}
_FIELD = {"layout": "field", "max_depth": 80.0}
_STREET = {
    "layout": "street",
    "max_depth": 80.0,
    "objects": ("pole", "car", "tree"),
    "n_objects": (4, 10),
}
DOMAINS: dict[str, DomainSpec] = {
    "indoor_rooms": DomainSpec(
        group=_LABELED,
        description="furnished rooms, procedural textures",
        fov_deg=(55, 75),
        height=(1.0, 1.7),
        pitch_deg=(-20, 5),
        roll_deg=2,
        objects=("crate", "ball", "barrel", "stack"),
        n_objects=(3, 7),
        **_ROOM,
    ),
    "street_drive": DomainSpec(
        group=_LABELED,
        description="KITTI-like road between buildings",
        fov_deg=(70, 90),
        height=(1.5, 1.8),
        pitch_deg=(-5, 2),
        roll_deg=1,
        **_STREET,
    ),
    "object_field": DomainSpec(
        group=_LABELED,
        description="open ground, scattered objects",
        fov_deg=(50, 80),
        height=(1.2, 2.5),
        pitch_deg=(-15, 0),
        roll_deg=2,
        objects=("crate", "ball", "barrel", "stack"),
        n_objects=(8, 20),
        object_scale=(1.5, 3.0),
        patterns=("noise", "checker", "tiles"),
        **_FIELD,
    ),
    "photo_rooms": DomainSpec(
        group=_UNLABELED,
        description="photo textures, coloured light, clutter",
        fov_deg=(50, 85),
        height=(0.6, 2.0),
        pitch_deg=(-30, 15),
        roll_deg=8,
        objects=("crate", "ball", "barrel", "stack"),
        n_objects=(5, 12),
        photos=PHOTOS,
        photo_prob=0.6,
        light_tint=0.5,
        saturation=(0.1, 0.8),
        **_ROOM,
    ),
    "corridors": DomainSpec(
        group=_UNLABELED,
        description="long narrow rooms, dim",
        fov_deg=(50, 80),
        height=(1.2, 1.9),
        pitch_deg=(-15, 10),
        roll_deg=4,
        objects=("barrel", "crate", "ball"),
        n_objects=(1, 4),
        room=((1.8, 3.0), (2.3, 3.0), (7.0, 9.0)),
        ambient=(0.12, 0.25),
        light=(0.6, 0.9),
        photos=("brick", "gravel", "camera"),
        photo_prob=0.3,
        noise=0.03,
        **_ROOM,
    ),
    "warehouse": DomainSpec(
        group=_UNLABELED,
        description="stacked crates and barrels",
        fov_deg=(60, 90),
        height=(1.2, 2.5),
        pitch_deg=(-25, 5),
        roll_deg=3,
        objects=("stack", "barrel", "crate"),
        n_objects=(6, 14),
        room=((5.0, 6.5), (3.0, 3.8), (5.0, 6.5)),
        patterns=("wood", "noise", "stripes"),
        photos=("brick", "gravel", "grass"),
        photo_prob=0.3,
        ambient=(0.15, 0.3),
        light_tint=0.3,
        noise=0.02,
        vignette=0.4,
        **_ROOM,
    ),
    "photo_city": DomainSpec(
        group=_UNLABELED,
        description="photo-textured streets, haze",
        fov_deg=(50, 95),
        height=(1.2, 4.0),
        pitch_deg=(-10, 10),
        roll_deg=6,
        photos=PHOTOS,
        photo_prob=0.6,
        sun_elevation_deg=(10, 80),
        skies=("day", "overcast", "dusk"),
        fog_m=(60, 250),
        light_tint=0.3,
        **_STREET,
    ),
    "park": DomainSpec(
        group=_UNLABELED,
        description="trees, hills, grass photos, low sun",
        fov_deg=(45, 90),
        height=(0.5, 6.0),
        pitch_deg=(-30, 5),
        roll_deg=4,
        objects=("tree", "tree", "ball", "barrel"),
        n_objects=(8, 24),
        object_scale=(1.0, 2.0),
        patterns=("noise", "wood", "stripes"),
        photos=("grass", "gravel", "brick", "moon"),
        photo_prob=0.6,
        sun_elevation_deg=(8, 35),
        skies=("day", "overcast"),
        fog_m=(120, 400),
        light_tint=0.3,
        **_FIELD,
    ),
    "market": DomainSpec(
        group=_UNLABELED,
        description="colourful photo-textured stalls and poles, overcast",
        fov_deg=(55, 90),
        height=(1.4, 2.2),
        pitch_deg=(-12, 6),
        roll_deg=3,
        objects=("crate", "stack", "pole", "ball"),
        n_objects=(10, 22),
        photos=("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"),
        photo_prob=0.7,
        saturation=(0.4, 0.9),
        skies=("overcast", "day"),
        fog_m=(80, 300),
        light_tint=0.2,
        **_FIELD,
    ),
    "cellar": DomainSpec(
        group=_UNLABELED,
        description="low vaulted cellars with barrels and columns, warm lamp",
        fov_deg=(60, 95),
        height=(0.8, 1.6),
        pitch_deg=(-20, 10),
        roll_deg=5,
        objects=("barrel", "column", "crate"),
        n_objects=(4, 10),
        room=((3.0, 5.0), (2.0, 2.6), (4.0, 8.0)),
        patterns=("bricks", "wood", "noise"),
        photos=("brick", "gravel", "moon"),
        photo_prob=0.5,
        ambient=(0.08, 0.2),
        light=(0.7, 1.0),
        light_tint=0.7,
        noise=0.04,
        vignette=0.5,
        **_ROOM,
    ),
    "dunes": DomainSpec(
        group=_UNLABELED,
        description="bare rolling ground, few objects, high camera, harsh sun",
        fov_deg=(40, 85),
        height=(1.0, 8.0),
        pitch_deg=(-35, 0),
        roll_deg=6,
        objects=("ball", "crate", "tree"),
        n_objects=(2, 8),
        object_scale=(1.0, 4.0),
        patterns=("noise", "stripes", "wood"),
        photos=("gravel", "grass", "moon"),
        photo_prob=0.5,
        sun_elevation_deg=(20, 80),
        skies=("day", "dusk"),
        fog_m=(150, 600),
        saturation=(0.2, 0.5),
        **_FIELD,
    ),
    "atrium": DomainSpec(
        group=_VALIDATION,
        description="tall atrium with columns, crates and balls, tinted light",
        fov_deg=(50, 80),
        height=(1.2, 2.0),
        pitch_deg=(-15, 12),
        roll_deg=4,
        objects=("column", "crate", "ball"),
        n_objects=(5, 10),
        room=((6.0, 8.0), (4.0, 5.5), (6.0, 8.0)),
        patterns=("bricks", "stripes", "wood"),
        photos=("coffee", "rocket", "brick", "camera"),
        photo_prob=0.4,
        saturation=(0.1, 0.5),
        light_tint=0.4,
        ambient=(0.25, 0.4),
        **_ROOM,
    ),
    "quarry": DomainSpec(
        group=_VALIDATION,
        description="stone plinths, stacks and trees on open ground, overcast haze",
        fov_deg=(45, 80),
        height=(1.5, 5.0),
        pitch_deg=(-20, 5),
        roll_deg=5,
        objects=("plinth", "stack", "tree", "ball"),
        n_objects=(8, 18),
        object_scale=(1.5, 3.0),
        patterns=("noise", "tiles", "checker"),
        photos=("gravel", "brick", "grass"),
        photo_prob=0.5,
        sun_elevation_deg=(10, 40),
        skies=("overcast", "day"),
        fog_m=(60, 200),
        light_tint=0.3,
        saturation=(0.1, 0.4),
        **_FIELD,
    ),
    "gallery": DomainSpec(
        group=_HELD_OUT,
        description="hall with a grid of pillars and plinths",
        fov_deg=(55, 80),
        height=(1.3, 1.8),
        pitch_deg=(-10, 10),
        roll_deg=3,
        objects=("pillar", "plinth"),
        n_objects=(6, 9),
        room=((5.5, 6.5), (3.5, 4.5), (5.5, 6.5)),
        grid=True,
        patterns=("tiles", "checker", "noise"),
        photos=("astronaut", "coffee", "chelsea", "rocket", "moon"),
        photo_prob=0.4,
        saturation=(0.0, 0.3),
        light=(0.8, 1.0),
        ambient=(0.35, 0.5),
        **_ROOM,
    ),
    "ruins": DomainSpec(
        group=_HELD_OUT,
        description="walls and columns of stacked blocks at dusk",
        fov_deg=(45, 75),
        height=(1.5, 4.0),
        pitch_deg=(-15, 5),
        roll_deg=8,
        objects=("wall", "stack", "column", "ball"),
        n_objects=(8, 18),
        object_scale=(1.5, 3.0),
        patterns=("bricks", "noise", "tiles"),
        photos=("gravel", "brick", "moon"),
        photo_prob=0.5,
        sun_elevation_deg=(4, 15),
        skies=("dusk",),
        fog_m=(50, 150),
        light_tint=0.6,
        saturation=(0.1, 0.4),
        **_FIELD,
    ),
}
LABELED = tuple(k for k, v in DOMAINS.items() if v.group == _LABELED)
UNLABELED = tuple(k for k, v in DOMAINS.items() if v.group == _UNLABELED)
VALIDATION = tuple(k for k, v in DOMAINS.items() if v.group == _VALIDATION)
HELD_OUT = tuple(k for k, v in DOMAINS.items() if v.group == _HELD_OUT)


__all__ = ["DOMAINS", "HELD_OUT", "LABELED", "UNLABELED", "VALIDATION"]

"""The synthetic scenes as a dataset: rendered once, in worker processes, and cached on disk.

:class:`SynthDepthDataset` renders scene ``i`` of each domain with ``dalib.synth`` (NumPy in
CPU worker processes, or :mod:`dalib.world.render_torch` on a CUDA GPU), stores each domain
as one ``.npz`` named by its settings and the renderer's version, and serves samples in the
module contract of :mod:`dalib.data` (which re-exports everything here).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import types
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dalib.config import cpu_count, get_profile
from dalib.io import atomic_write
from dalib.sample import as_size, depth_fields, fit_sample, image_to_tensor
from dalib.workers import parallel_map

# Seed offsets that keep the scenes of different splits apart: scene i of a split with offset
# o is rendered with seed o + i, so splits stay disjoint while they hold < 1,000,000 scenes.
SPLIT_SEEDS = {"train": 0, "val": 1_000_000, "test": 2_000_000}

# Bump when the cache layout written by SynthDepthDataset changes.
_CACHE_FORMAT = 1


def synth_cache_key(
    domain: str, n: int, size: tuple[int, int], seed: int, renderer_version: str
) -> str:
    """Hex digest naming a rendered set: changes with any setting or with the renderer."""
    settings = {
        "domain": domain,
        "n": n,
        "size": list(size),
        "seed": seed,
        "renderer": renderer_version,
        "format": _CACHE_FORMAT,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def render_device(device: str | None = "auto") -> str | None:
    """Where :class:`SynthDepthDataset` renders: ``None`` for the NumPy renderer (CPU worker
    processes) or a torch device for :mod:`dalib.world.render_torch`; ``"auto"`` picks ``"cuda"``
    when a CUDA GPU is available, else ``None``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else None
    return None if device is None else str(torch.device(device))


def _render_chunk(job: tuple[str, list[int], tuple[int, int], str | None]) -> list:
    domain, seeds, size, device = job
    synth = importlib.import_module("dalib.synth")
    return synth.render_many(domain, seeds, size=size, device=device)


def _save_arrays(handle, arrays: dict[str, np.ndarray], deflate_all: bool) -> None:
    """An ``.npz`` (read by ``np.load``). ``deflate_all``: every array deflated (NumPy renders,
    where zlib's 3-15 ms a scene is small beside rendering and saves 20-40 % of the disk);
    else images and depth are stored as they are and only the masks deflated (GPU renders,
    where zlib would be the slowest step: 15 ms of CPU for a 256 px scene)."""
    with zipfile.ZipFile(handle, "w", allowZip64=True) as archive:
        for name, array in arrays.items():
            packed = deflate_all or name not in ("image", "depth")
            info = zipfile.ZipInfo(f"{name}.npy", (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


class SynthDepthDataset(Dataset):
    """Scenes from :mod:`dalib.synth`, rendered once and cached on disk.

    Scene ``i`` of each domain is ``synth.render(domain, seed=seed + i, size=render_size)``:
    ``seed`` is the split's offset, so give each split a disjoint range (see
    :data:`SPLIT_SEEDS`: train 0, val 1,000,000, test 2,000,000). Items are ordered domain by
    domain, ``index = domain_position * n_per_domain + i``.

    Args:
        domains: a domain name or names (keys of ``synth.DOMAINS``).
        n_per_domain: scenes per domain.
        size: output side or (H, W); samples are fitted to it (:func:`fit_sample`).
        root: cache folder. Each domain is stored as ``<domain>-<key>.npz``, where the key
            (:func:`synth_cache_key`) hashes domain, n, render size, seed and
            ``synth.render_version(device)`` (which changes with the renderer's code); a later
            construction with equal settings loads it without rendering. ``None`` renders in
            memory and caches nothing.
        seed: seed offset of this split (see above).
        render_size: size rendered and cached (default ``size``); render larger and fit down
            for antialiased images.
        progress: tqdm progress bar while rendering; ``None`` follows the active profile.
        workers: processes that render (default: the CPUs this process may use; 1 renders
            in this process). Scenes are deterministic per (domain, seed, size), so the
            images are the same whatever the number of workers.
        device: where to render (:func:`render_device`): ``"auto"`` (the default) renders on
            a CUDA GPU with :mod:`dalib.world.render_torch` when there is one, else with NumPy; the
            two agree to rounding, not bit for bit, so the cache key tells them apart.

    Samples follow the module contract, plus ``"seed"`` (int, the scene's render seed).
    """

    def __init__(
        self,
        domains: str | Sequence[str],
        n_per_domain: int,
        size: int | Sequence[int],
        root: str | os.PathLike | None = None,
        seed: int = 0,
        render_size: int | Sequence[int] | None = None,
        progress: bool | None = None,
        workers: int | None = None,
        device: str | None = "auto",
    ) -> None:
        synth = importlib.import_module("dalib.synth")  # not kept: datasets must pickle
        self.domains = (domains,) if isinstance(domains, str) else tuple(domains)
        unknown = [d for d in self.domains if d not in synth.DOMAINS]
        if not self.domains or unknown:
            raise ValueError(
                f"unknown domains {unknown or '(none given)'}; choose from {sorted(synth.DOMAINS)}"
            )
        if not isinstance(n_per_domain, int) or n_per_domain < 1:
            raise ValueError(f"n_per_domain must be a positive int, got {n_per_domain!r}")
        self.n_per_domain = n_per_domain
        self.size = as_size(size)
        self.render_size = (
            as_size(render_size, "render_size") if render_size is not None else self.size
        )
        self.seed = seed
        self.root = Path(root) if root is not None else None
        self.progress = get_profile().progress if progress is None else progress
        self.workers = cpu_count() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.device = render_device(device)
        self.render_version = synth.render_version(self.device)
        self._scenes = [self._load_or_render(synth, domain) for domain in self.domains]

    def cache_path(self, domain: str) -> Path | None:
        """Where ``domain``'s rendered scenes are (or would be) cached; None without a root."""
        if self.root is None:
            return None
        key = synth_cache_key(
            domain, self.n_per_domain, self.render_size, self.seed, self.render_version
        )
        return self.root / f"{domain}-{key}.npz"

    def _seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n_per_domain)]

    def _load_or_render(self, synth: types.ModuleType, domain: str) -> dict[str, np.ndarray]:
        path = self.cache_path(domain)
        if path is not None and path.exists():
            try:
                with np.load(path) as cached:
                    arrays = {
                        name: cached[name]
                        for name in ("image", "depth", "sky", "semantic", "seeds")
                    }
                if np.array_equal(arrays["seeds"], self._seeds()):
                    return arrays
                warnings.warn(f"cache {path} holds other scenes; re-rendering", stacklevel=3)
            except (OSError, ValueError, KeyError, EOFError) as err:
                warnings.warn(f"unreadable cache {path} ({err}); re-rendering", stacklevel=3)
        arrays = self._render(synth, domain)
        if path is not None:
            with atomic_write(path) as temp, open(temp, "wb") as handle:
                _save_arrays(handle, arrays, deflate_all=self.device is None)
        return arrays

    def _render(
        self, synth: types.ModuleType, domain: str, chunk: int = 16
    ) -> dict[str, np.ndarray]:
        seeds = self._seeds()
        chunks = [seeds[i : i + chunk] for i in range(0, len(seeds), chunk)]
        jobs = [(domain, c, self.render_size, self.device) for c in chunks]
        scenes = []
        with tqdm(total=len(seeds), desc=f"render {domain}", disable=not self.progress) as bar:
            # torch renders in fresh processes: a forked one cannot use CUDA
            spawn = self.device is not None
            for batch in parallel_map(_render_chunk, jobs, self.workers, spawn=spawn):
                scenes.extend(batch)
                bar.update(len(batch))
        expected = self.render_size
        for scene in scenes:
            if scene.image.shape != (*expected, 3) or scene.depth.shape != expected:
                raise ValueError(
                    f"synth.render_many({domain!r}) returned image {scene.image.shape} / depth "
                    f"{scene.depth.shape}, expected {(*expected, 3)} / {expected}"
                )
        semantic = np.stack([s.semantic for s in scenes])
        return {
            "image": np.stack([s.image for s in scenes]).astype(np.uint8),
            "depth": np.stack([s.depth for s in scenes]).astype(np.float32),
            "sky": np.stack([s.sky for s in scenes]).astype(bool),
            "semantic": semantic.astype(np.min_scalar_type(max(int(semantic.max()), 0))),
            "seeds": np.asarray(seeds, dtype=np.int64),
        }

    def __len__(self) -> int:
        return len(self.domains) * self.n_per_domain

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        which, i = divmod(index, self.n_per_domain)
        arrays = self._scenes[which]
        sample = {
            "image": image_to_tensor(arrays["image"][i]),
            **depth_fields(arrays["depth"][i], arrays["sky"][i]),
            "semantic": torch.from_numpy(arrays["semantic"][i].astype(np.int64)),
            "domain": self.domains[which],
            "index": index,
            "seed": int(arrays["seeds"][i]),
        }
        return fit_sample(sample, self.size)


__all__ = ["SPLIT_SEEDS", "SynthDepthDataset", "render_device", "synth_cache_key"]

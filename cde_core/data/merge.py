"""`cde data merge OUT IN...`: several pair datasets -> one, with fresh splits.

Why: training reads one manifest; a data set grows by parts (more simulator seeds in another look, episodes
imported from a robot's bags). Files are hard-linked into OUT/images when OUT is on the same file system
(copied otherwise), so OUT stands alone and costs no space; ids must be unique across the inputs.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Sequence

from cde_core.data.manifest import ManifestError, PairRecord, read_manifest, write_manifest
from cde_core.data.splits import assign_splits

_PATH_FIELDS = ("before", "after", "before_mask", "after_mask")


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def merge_datasets(inputs: Sequence[str | Path], out: str | Path, split_seed: int = 0, folds: int = 2) -> list[PairRecord]:
    """Merge the manifests of `inputs` into `out` (files under out/images/<input name>/), then assign splits."""
    out = Path(out)
    merged: list[PairRecord] = []
    seen: dict[str, Path] = {}
    for source in map(Path, inputs):
        if source.resolve() == out.resolve():
            raise ManifestError(f"{source}: the output directory cannot be one of the inputs")
        for record in read_manifest(source):
            if record.id in seen:
                raise ManifestError(f"pair id {record.id!r} is in both {seen[record.id]} and {source}: ids must be "
                                    "unique (generate other seeds, or rename)")
            seen[record.id] = source
            paths = {}
            for name in _PATH_FIELDS:
                rel = getattr(record, name)
                if rel:
                    target = Path("images") / source.name / Path(rel).name
                    _link(source / rel, out / target)
                    paths[name] = str(target)
            merged.append(dataclasses.replace(record, splits={}, **paths))
    if not merged:
        raise ManifestError(f"no pairs in {list(map(str, inputs))}")
    assign_splits(merged, seed=split_seed, folds=folds)
    write_manifest(out, merged)
    return merged

"""Unlabelled frames from pair manifests: the before and after image of every pair (each file once).

`exclude_roles` with `split` keeps a probe honest: e.g. leave out the test pairs of iid_0 so the probe's
held-out images were never seen, even without labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from cde_core.data.manifest import read_manifest
from cde_core.pretrain.sources.base import Frame, FrameSourceError, read_rgb


class ManifestFrameSource:
    def __init__(self, root: str | Path, split: str = "", exclude_roles: Sequence[str] = ()) -> None:
        self.root = Path(root)
        if exclude_roles and not split:
            raise FrameSourceError(f"manifest source {self.root}: exclude_roles needs a split name")
        records = [r for r in read_manifest(self.root) if not (split and r.role(split) in set(exclude_roles))]
        seen: dict[str, str] = {}  # image -> the pair it belongs to (its clip)
        for record in records:
            seen.setdefault(record.before, record.id)
            seen.setdefault(record.after, record.id)
        self.paths = [self.root / rel for rel in seen]
        self.clips = list(seen.values())
        if not self.paths:
            raise FrameSourceError(f"manifest {self.root} has no pairs left after excluding {list(exclude_roles)}")

    def describe(self) -> str:
        return f"manifest {self.root} ({len(self.paths)} frames)"

    def frames(self) -> Iterator[Frame]:
        for path, clip in zip(self.paths, self.clips):
            if not path.is_file():
                raise FrameSourceError(f"manifest {self.root} names {path}, which does not exist")
            yield clip, read_rgb(str(path))

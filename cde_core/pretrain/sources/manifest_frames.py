"""Unlabelled frames from pair manifests: the before and after image of every pair (each file once).

`exclude_roles` with `split` keeps a probe honest: e.g. leave out the test pairs of iid_0 so the probe's
held-out images were never seen, even without labels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from cde_core.data.manifest import read_manifest
from cde_core.pretrain.sources.base import FrameSourceError, read_rgb


class ManifestFrameSource:
    def __init__(self, root: str | Path, split: str = "", exclude_roles: Sequence[str] = ()) -> None:
        self.root = Path(root)
        if exclude_roles and not split:
            raise FrameSourceError(f"manifest source {self.root}: exclude_roles needs a split name")
        records = [r for r in read_manifest(self.root) if not (split and r.role(split) in set(exclude_roles))]
        seen: dict[str, None] = {}
        for record in records:
            seen.setdefault(record.before)
            seen.setdefault(record.after)
        self.paths = [self.root / rel for rel in seen]
        if not self.paths:
            raise FrameSourceError(f"manifest {self.root} has no pairs left after excluding {list(exclude_roles)}")

    def describe(self) -> str:
        return f"manifest {self.root} ({len(self.paths)} frames)"

    def frames(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            if not path.is_file():
                raise FrameSourceError(f"manifest {self.root} names {path}, which does not exist")
            yield read_rgb(str(path))

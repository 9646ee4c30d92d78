"""A torch Dataset over one split/role of a pair manifest."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cde_core.data.manifest import PairRecord
from cde_core.preprocessing import Preprocessing, preprocess_rgb


class PairDecodeError(RuntimeError):
    """An image of a pair could not be read (names the pair and file)."""


def vocabulary(records: Sequence[PairRecord], field: str) -> list[str]:
    """Sorted, stable class (or object) names over all records, whatever the split."""
    return sorted({getattr(r, field) for r in records})


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class PairDataset(Dataset):
    """Items: (before [3,S,S], after [3,S,S], action index, object index).

    Preprocessed tensors are cached in memory on first use (benchmark sets are a few thousand pairs)."""

    def __init__(self, root: str | Path, records: Sequence[PairRecord], classes: Sequence[str],
                 objects: Sequence[str], preprocessing: Preprocessing, cache: bool = True) -> None:
        self.root = Path(root)
        self.records = list(records)
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.object_index = {o: i for i, o in enumerate(objects)}
        self.preprocessing = preprocessing
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None
        unknown = {r.action for r in self.records} - set(self.class_index)
        if unknown:
            raise ValueError(f"actions {sorted(unknown)} are not in the class list {list(classes)}")

    def __len__(self) -> int:
        return len(self.records)

    def _image(self, index: int, rel: str) -> torch.Tensor:
        path = self.root / rel
        try:
            return torch.from_numpy(preprocess_rgb(load_rgb(path), self.preprocessing))
        except (OSError, ValueError) as exc:
            raise PairDecodeError(f"pair {self.records[index].id!r} (#{index}): cannot read {path}: {exc}") from exc

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        record = self.records[index]
        if self._cache is not None and index in self._cache:
            before, after = self._cache[index]
        else:
            before, after = self._image(index, record.before), self._image(index, record.after)
            if self._cache is not None:
                self._cache[index] = (before, after)
        return before, after, self.class_index[record.action], self.object_index.get(record.object, 0)

    def labels(self) -> list[int]:
        return [self.class_index[r.action] for r in self.records]

"""The pair manifest: one JSON object per before/after pair (`manifest.jsonl`) beside the images.

Every producer (Meta-World generator, synthetic generator, bag import) writes it and every consumer
(training, evaluation, pretraining probe) reads it; the format is in docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

MANIFEST_NAME = "manifest.jsonl"
ROLES = ("train", "val", "test", "ood")
KINDS = ("effect", "failed", "no_change")
NO_CHANGE = "none"


class ManifestError(ValueError):
    """A manifest row is malformed (the message names the file and line)."""


@dataclass
class PairRecord:
    id: str
    before: str
    after: str
    action: str
    object: str
    antonym: str | None = None
    commanded_action: str = ""
    effect_happened: bool = True
    kind: str = "effect"
    source: str = ""
    task: str = ""
    seed: int = 0
    camera: str = ""
    splits: dict[str, str] = field(default_factory=dict)

    def role(self, split: str) -> str | None:
        return self.splits.get(split)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cell(self) -> tuple[str, str]:
        return (self.object, self.action)


_REQUIRED = ("id", "before", "after", "action", "object")


def _record_from(data: dict[str, Any], where: str) -> PairRecord:
    missing = [k for k in _REQUIRED if not data.get(k) and data.get(k) != 0]
    if missing:
        raise ManifestError(f"{where}: missing required field(s) {missing}")
    known = set(PairRecord.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}")
    record = PairRecord(**data)
    if record.kind not in KINDS:
        raise ManifestError(f"{where}: kind {record.kind!r} not in {KINDS}")
    bad = {s: r for s, r in record.splits.items() if r not in ROLES}
    if bad:
        raise ManifestError(f"{where}: split roles {bad} not in {ROLES}")
    return record


def read_manifest(directory: str | Path) -> list[PairRecord]:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path} not found: a dataset directory needs a {MANIFEST_NAME} "
                            "(make one with `cde sim generate`, `cde data import` or the synthetic generator)")
    records: list[PairRecord] = []
    seen: set[str] = set()
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not JSON ({exc})") from exc
            record = _record_from(data, where)
            if record.id in seen:
                raise ManifestError(f"{where}: duplicate id {record.id!r}")
            seen.add(record.id)
            records.append(record)
    return records


def write_manifest(directory: str | Path, records: Iterable[PairRecord]) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def split_names(records: Iterable[PairRecord]) -> list[str]:
    return sorted({name for r in records for name in r.splits})

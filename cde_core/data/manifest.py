"""The pair manifest: one JSON object per before/after pair (`manifest.jsonl`) beside the images.

Every producer (Meta-World generator, synthetic generator, bag import) writes it and every consumer
(training, evaluation, pretraining probe) reads it; the format is in docs/ARCHITECTURE.md. Rows are
validated on read and on write, so a bad row is reported where it is made or found (file and line),
not as a KeyError deep inside a training loop.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

MANIFEST_NAME = "manifest.jsonl"
ROLES = ("train", "val", "test", "ood")
KINDS = ("effect", "failed", "no_change")
NO_CHANGE = "none"


class ManifestError(ValueError):
    """A manifest row is malformed (the message names the file and line, or the record id)."""


@dataclass
class PairRecord:
    """One before/after pair and its labels; `action` is what the world underwent (the class label)."""

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
    # Robot self-masks beside the frames (mono PNG, 255 = robot; "" = none) and the episode's look.
    before_mask: str = ""
    after_mask: str = ""
    appearance: str = ""

    def role(self, split: str) -> str | None:
        """This pair's role in `split`, or None when the split does not use it."""
        return self.splits.get(split)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cell(self) -> tuple[str, str]:
        """The (object, action) cell: the unit compositional splits hold out."""
        return (self.object, self.action)


_REQUIRED = ("id", "before", "after", "action", "object")
_FIELD_NAMES = tuple(f.name for f in fields(PairRecord))


def record_problems(record: PairRecord) -> list[str]:
    """Everything wrong with one record (empty when valid): types, kinds, roles, label consistency."""
    problems: list[str] = []
    for name in _REQUIRED + ("commanded_action", "kind", "source", "task", "camera", "before_mask", "after_mask",
                             "appearance"):
        if not isinstance(getattr(record, name), str):
            problems.append(f"{name} must be a string, got {getattr(record, name)!r}")
    if problems:
        return problems
    empty = [name for name in _REQUIRED if not getattr(record, name)]
    if empty:
        problems.append(f"required field(s) {empty} are empty")
    if bool(record.before_mask) != bool(record.after_mask):
        problems.append("before_mask and after_mask come together (both paths or neither)")
    if record.antonym is not None and not isinstance(record.antonym, str):
        problems.append(f"antonym must be a string or null, got {record.antonym!r}")
    if not isinstance(record.effect_happened, bool):
        problems.append(f"effect_happened must be true/false, got {record.effect_happened!r}")
    if isinstance(record.seed, bool) or not isinstance(record.seed, int):
        problems.append(f"seed must be an integer, got {record.seed!r}")
    if record.kind not in KINDS:
        problems.append(f"kind {record.kind!r} not in {KINDS}")
    if record.kind == "no_change" and record.action != NO_CHANGE:
        problems.append(f"kind 'no_change' needs action {NO_CHANGE!r}, got {record.action!r}")
    if record.action == NO_CHANGE and record.antonym is not None:
        problems.append(f"action {NO_CHANGE!r} has no antonym, got {record.antonym!r}")
    if not isinstance(record.splits, dict):
        problems.append(f"splits must be an object split -> role, got {record.splits!r}")
    else:
        bad = {s: r for s, r in record.splits.items() if r not in ROLES}
        if bad:
            problems.append(f"split roles {bad} not in {ROLES}")
    return problems


def _record_from(data: Any, where: str) -> PairRecord:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: a row must be a JSON object, got {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ManifestError(f"{where}: missing required field(s) {missing}")
    unknown = sorted(set(data) - set(_FIELD_NAMES))
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {unknown}; known fields: {list(_FIELD_NAMES)}")
    record = PairRecord(**data)
    problems = record_problems(record)
    if problems:
        raise ManifestError(f"{where}: " + "; ".join(problems))
    return record


def read_manifest(directory: str | Path) -> list[PairRecord]:
    """All records of a dataset directory, validated; raises ManifestError naming file and line."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path} not found: a dataset directory needs a {MANIFEST_NAME} "
                            "(make one with `cde sim generate`, `cde data import` or the synthetic generator)")
    records: list[PairRecord] = []
    seen: dict[str, int] = {}
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
                raise ManifestError(f"{where}: duplicate id {record.id!r} (first on line {seen[record.id]})")
            seen[record.id] = number
            records.append(record)
    return records


def write_manifest(directory: str | Path, records: Iterable[PairRecord]) -> Path:
    """Validate, then write atomically (temp file + rename) so a reader never sees half a manifest."""
    directory = Path(directory)
    records = list(records)
    seen: set[str] = set()
    for index, record in enumerate(records):
        problems = record_problems(record)
        if record.id in seen:
            problems.append("duplicate id")
        if problems:
            raise ManifestError(f"record {index} ({record.id!r}): " + "; ".join(problems))
        seen.add(record.id)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MANIFEST_NAME
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w") as handle:
        for record in records:
            handle.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def split_names(records: Iterable[PairRecord]) -> list[str]:
    """Every split name used by any record, sorted."""
    return sorted({name for r in records for name in r.splits})

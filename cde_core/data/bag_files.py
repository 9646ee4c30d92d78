"""Which MCAP files of recorded episode bags can be imported, including what a kill -9 leaves behind.

The recorder (cde_ros/episode_recorder.py) writes each episode or label batch as its own closed file
`<bag>/<bag>_<k>.mcap`, then lists it in `<bag>/metadata.yaml`. A recorder killed between those two
steps leaves a complete file that is not listed, or (for a bag's first file) no metadata.yaml at all;
a copy cut short or a disk without fsync can leave a listed file truncated at any byte. Each file is
therefore judged on its own:
  - listed and complete: read;
  - named like the recorder's files, complete, not listed (or the bag has no metadata.yaml): read, and
    reported as recovered; its own embedded rosbag2 metadata must carry the episode layout;
  - truncated or otherwise not a complete MCAP file: skipped and reported (other files are unaffected).
"Complete" is MCAP's own end of file: the footer record followed by the magic bytes, which rosbags'
writer only writes in `close()`. Hidden entries (`.partial` directories, temp files) are never read.
"""
from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUT = "cde-episodes/1"
METADATA = "metadata.yaml"
_MAGIC = b"\x89MCAP0\r\n"
_OP_FOOTER, _OP_METADATA, _OP_METADATA_INDEX = 0x02, 0x0C, 0x0D
_FOOTER_SIZE = 1 + 8 + 8 + 8 + 4  # opcode, record length, summary start, summary offset start, summary CRC


class BagImportError(ValueError):
    """A path is not a readable episode bag (the message says which and why)."""


@dataclass(frozen=True)
class EpisodeFile:
    """One storage file to import; `recovered` says why it is read although metadata.yaml does not list it."""

    path: Path
    bag: Path
    recovered: str = ""  # "" (listed), "not listed in metadata.yaml", "bag has no metadata.yaml"


@dataclass(frozen=True)
class FileProblem:
    """A file the import skipped or recovered, as written to generation.json."""

    file: str
    problem: str
    action: str  # "skipped" or "recovered"


def _file_index(bag: Path, name: str) -> int | None:
    """k of a recorder-named file `<bag>_<k>.mcap`, else None."""
    match = re.fullmatch(re.escape(bag.name) + r"_(\d+)\.mcap", name)
    return int(match.group(1)) if match else None


def _recorder_files(bag: Path) -> list[Path]:
    """The recorder-named MCAP files of a bag directory, in the order they were written."""
    indexed = [(k, p) for p in bag.iterdir() if (k := _file_index(bag, p.name)) is not None and p.is_file()]
    return [p for _, p in sorted(indexed)]


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Bag directories named directly or found under the given directories, sorted (so the import's result
    depends on the set of bags, not the order they are named in). A bag is a directory with metadata.yaml,
    or one holding recorder-named `<dir>_<k>.mcap` files (a recorder killed before writing metadata.yaml)."""
    bags: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / METADATA).is_file() or (path.is_dir() and _recorder_files(path)):
            bags.append(path)
            continue
        if not path.is_dir():
            raise BagImportError(f"{path}: not a bag directory (no metadata.yaml) nor a directory of bags")
        found = {p.parent for p in path.rglob(METADATA)}
        found |= {p.parent for p in path.rglob("*.mcap") if _file_index(p.parent, p.name) is not None}
        found = {p for p in found if not any(part.startswith(".") for part in p.relative_to(path).parts)}
        if not found:
            raise BagImportError(f"{path}: no bags found below it (a bag is a directory with metadata.yaml)")
        bags.extend(found)
    return sorted(dict.fromkeys(bags))


def _listed_files(bag: Path) -> list[Path] | str:
    """The files metadata.yaml lists, or "bag has no metadata.yaml". Raises BagImportError for metadata that
    does not parse (the user decides: delete it and the files are recovered by name) and for a bag of another
    layout or storage (not a damaged episode bag but someone else's)."""
    from ruamel.yaml import YAML, YAMLError

    if not (bag / METADATA).is_file():
        return "bag has no metadata.yaml"
    try:
        info = YAML(typ="safe").load((bag / METADATA).read_text())["rosbag2_bagfile_information"]
        names = list(info["relative_file_paths"])
    except (OSError, UnicodeDecodeError, YAMLError, KeyError, TypeError) as exc:
        detail = " ".join(str(exc).split())  # YAML errors span lines
        raise BagImportError(f"{bag}/metadata.yaml is not rosbag2 metadata: {detail}; delete it to import the "
                             "bag's files on their own") from exc
    layout = (info.get("custom_data") or {}).get("cde.layout")
    if layout != LAYOUT:
        raise BagImportError(f"{bag}: not an episode bag of cde_ros's recorder (custom_data cde.layout is "
                             f"{layout!r}, expected {LAYOUT!r})")
    if info.get("storage_identifier") != "mcap":
        raise BagImportError(f"{bag}: storage {info.get('storage_identifier')!r}, expected mcap")
    return [bag / Path(name).name for name in names]


def bag_files(bag: Path) -> tuple[list[EpisodeFile], list[FileProblem]]:
    """The files of one bag to read, in recording order, and the listed files that are missing."""
    listed = _listed_files(bag)
    problems: list[FileProblem] = []
    files: list[EpisodeFile] = []
    if isinstance(listed, str):
        return [EpisodeFile(p, bag, listed) for p in _recorder_files(bag)], problems
    for path in listed:
        if path.is_file():
            files.append(EpisodeFile(path, bag))
        else:
            problems.append(FileProblem(str(path), "listed in metadata.yaml but missing", "skipped"))
    known = set(listed)
    files += [EpisodeFile(p, bag, "not listed in metadata.yaml") for p in _recorder_files(bag) if p not in known]
    return sorted(files, key=lambda f: (_file_index(bag, f.path.name) is None, _file_index(bag, f.path.name) or 0,
                                        f.path.name)), problems


def _read_at(handle: Any, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise struct.error(f"{size} bytes at offset {offset} run past the end of the file")
    return data


def _embedded_metadata(handle: Any, size: int, summary_start: int, summary_end: int) -> str | None:
    """The `serialized_metadata` text of the file's rosbag2 Metadata record, found through the summary's
    MetadataIndex (rosbags and ros2 bag both write it), or None when there is none."""
    offset = summary_start
    while summary_start and offset < summary_end:
        opcode, length = struct.unpack("<BQ", _read_at(handle, offset, 9))
        if opcode == _OP_METADATA_INDEX:
            body = _read_at(handle, offset + 9, length)
            record_offset, record_length = struct.unpack_from("<QQ", body)
            name_length = struct.unpack_from("<I", body, 16)[0]
            if body[20:20 + name_length] == b"rosbag2" and record_offset + record_length <= size:
                record = _read_at(handle, record_offset, record_length)
                if record[0] != _OP_METADATA:
                    return None
                pos = 9 + 4 + struct.unpack_from("<I", record, 9)[0] + 4  # skip the name and the map's length
                while pos < len(record):
                    key_length = struct.unpack_from("<I", record, pos)[0]
                    key = record[pos + 4:pos + 4 + key_length]
                    pos += 4 + key_length
                    value_length = struct.unpack_from("<I", record, pos)[0]
                    value = record[pos + 4:pos + 4 + value_length]
                    pos += 4 + value_length
                    if key == b"serialized_metadata":
                        return value.decode("utf-8")
        offset += 9 + length
    return None


def mcap_problem(path: Path, check_layout: bool = False) -> str | None:
    """Why `path` is not a complete MCAP file (truncated, not MCAP) - or, with `check_layout`, not one of
    the recorder's episode files - else None. Reads only the head and the summary, not the messages."""
    from ruamel.yaml import YAML, YAMLError

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            if size < 2 * len(_MAGIC) + _FOOTER_SIZE:
                return f"truncated ({size} bytes, less than an empty MCAP file)"
            if _read_at(handle, 0, len(_MAGIC)) != _MAGIC:
                return "not an MCAP file (no MCAP magic at its start)"
            tail = _read_at(handle, size - len(_MAGIC) - _FOOTER_SIZE, _FOOTER_SIZE + len(_MAGIC))
            opcode, length, summary_start, summary_offset_start = struct.unpack_from("<BQQQ", tail)
            if tail[-len(_MAGIC):] != _MAGIC or opcode != _OP_FOOTER or length != _FOOTER_SIZE - 9:
                return f"truncated ({size} bytes, no MCAP footer: the file was cut off before its end)"
            if not check_layout:
                return None
            footer_start = size - len(_MAGIC) - _FOOTER_SIZE
            text = _embedded_metadata(handle, size, summary_start, summary_offset_start or footer_start)
    except (OSError, struct.error, UnicodeDecodeError) as exc:
        return f"unreadable ({exc})"
    if text is None:
        return "not an episode file (no rosbag2 metadata inside it to tell its layout)"
    try:
        layout = ((YAML(typ="safe").load(text) or {}).get("custom_data") or {}).get("cde.layout")
    except (YAMLError, AttributeError) as exc:
        return f"not an episode file (its rosbag2 metadata does not parse: {exc})"
    if layout != LAYOUT:
        return f"not an episode file (custom_data cde.layout is {layout!r}, expected {LAYOUT!r})"
    return None

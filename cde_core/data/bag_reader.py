"""Reading one episode MCAP file with rosbags, parsing its message definitions once per import, not per file.

rosbags' AnyReader parses every schema a file embeds and compiles fresh deserialisers each time it is
opened; with one episode per file that was three quarters of the import's time (~75 ms per open, three
opens per episode). Every file of a recording embeds the same schemas, so `EpisodeFileReader` opens
the file with rosbags' rosbag2 Reader and takes its typestore from a small cache keyed by the exact
schema texts and type hashes: the first file of a recorder version pays, the rest reuse it. The
embedded definitions are still what decodes each file (a newer recorder's file gets its own entry),
and the RIHS01 hashes are checked like AnyReader checks them.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cde_core.data.bag_files import BagImportError

if TYPE_CHECKING:
    from rosbags.interfaces import Connection
    from rosbags.typesys.store import Typestore

# (msgtype, definition format name, definition text, digest) of every connection of a file
_SchemaKey = tuple[tuple[str, str, str, str], ...]


class UnreadableFileError(BagImportError):
    """rosbags cannot open or decode an episode file (the message says why)."""


@lru_cache(maxsize=8)  # one entry per distinct recorder version seen in an import: memory stays flat
def _typestore(key: _SchemaKey) -> Typestore:
    from rosbags.typesys import (
        Stores,
        get_types_from_idl,
        get_types_from_msg,
        get_typestore,
    )

    types: dict[str, Any] = {}
    for msgtype, fmt, text, _ in key:
        if fmt == "MSG":
            types.update(get_types_from_msg(text, msgtype))
        elif fmt == "IDL":
            types.update(get_types_from_idl(text))
        else:
            raise UnreadableFileError(f"no message definition embedded for {msgtype}")
    store = get_typestore(Stores.EMPTY)
    store.register(types)
    for msgtype, _, _, digest in key:
        if digest and (have := store.hash_rihs01(msgtype)) != digest:
            raise UnreadableFileError(f"message type {msgtype!r} hash mismatch {have} != {digest}")
    return store


class EpisodeFileReader:
    """`with EpisodeFileReader(path) as reader`: `connections`, `messages(connections)`, `deserialize`
    (the subset of AnyReader's interface the import uses). Raises UnreadableFileError."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections: list[Connection] = []
        self._reader: Any = None
        self._store: Typestore | None = None

    def __enter__(self) -> EpisodeFileReader:
        from rosbags.rosbag2 import Reader, ReaderError
        from rosbags.typesys import TypesysError

        try:
            reader = Reader(self.path)
            reader.open()
        except ReaderError as exc:
            raise UnreadableFileError(f"{self.path}: {exc}") from exc
        self._reader = reader
        try:
            self.connections = list(reader.connections)
            key = tuple(sorted({(c.msgtype, c.msgdef.format.name, c.msgdef.data, c.digest or "")
                                for c in self.connections}))
            self._store = _typestore(key)
        except TypesysError as exc:
            self.__exit__()
            raise UnreadableFileError(f"{self.path}: {exc}") from exc
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def messages(self, connections: Sequence[Connection]) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, log time ns, CDR bytes) of the given connections ([] yields nothing, unlike rosbags)."""
        from rosbags.rosbag2 import ReaderError

        if not connections:
            return
        try:
            yield from self._reader.messages(connections=connections)
        except ReaderError as exc:
            raise UnreadableFileError(f"{self.path}: {exc}") from exc

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        from rosbags.serde import SerdeError

        try:
            return self._store.deserialize_cdr(raw, msgtype)
        except SerdeError as exc:
            raise UnreadableFileError(f"{self.path}: cannot decode a {msgtype}: {exc}") from exc

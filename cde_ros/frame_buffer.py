"""A time-indexed ring buffer of camera frames, bounded by seconds and by bytes.

Callbacks only `add`; the worker asks for the frame `before(stamp)` a command started and the first
one `first_after(stamp)` it ended. Stamps come from message headers (the camera's clock), never from
arrival time, so frames that arrive out of order are inserted where they belong.

A frame older than the time window is refused (a stale straggler), unless `reset_after_frames` such
frames arrive in a row with increasing stamps: then the camera's clock jumped back (a restarted driver
stamping from its device clock, a simulator or bag restarted) and the buffer restarts on the new
timeline, as tf2 clears its buffer on a jump back in time. Without that a node would refuse every frame
until the new clock caught up with the old one, which may be hours. A single stray (a stamp-0 frame
from a driver's first message) is still just refused. While deciding, at most `reset_after_frames - 1`
frames are held outside the byte bound.
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BufferedFrame:
    """One stored frame: its header stamp, the untouched message (converted only when used), its size."""

    stamp_ns: int
    message: Any
    nbytes: int


@dataclass
class BufferStats:
    """Counters since creation plus the current fill, for diagnostics."""

    stored: int = 0
    evicted: int = 0  # aged out or pushed out by the byte bound (normal operation)
    dropped: int = 0  # refused: larger than the whole byte bound, or older than the time window
    replaced: int = 0  # same stamp twice: the newer message wins
    out_of_order: int = 0  # stored, but older than the newest frame (placed by stamp)
    clock_resets: int = 0  # the camera's stamps jumped back beyond the window: restarted on the new timeline
    count: int = 0
    bytes: int = 0
    span_s: float = 0.0


class FrameBuffer:
    """Frames sorted by header stamp; evicts the oldest when either bound is exceeded. Thread-safe."""

    def __init__(self, max_seconds: float, max_bytes: int, reset_after_frames: int = 3) -> None:
        if max_seconds <= 0 or max_bytes <= 0:
            raise ValueError("max_seconds and max_bytes must be positive")
        if reset_after_frames < 1:
            raise ValueError(f"reset_after_frames must be >= 1, got {reset_after_frames}")
        self.max_ns = int(max_seconds * 1e9)
        self.max_bytes = int(max_bytes)
        self.reset_after_frames = int(reset_after_frames)
        self._behind: list[BufferedFrame] = []  # consecutive frames older than the window (a new timeline?)
        self._stamps: list[int] = []
        self._frames: list[BufferedFrame] = []
        self._bytes = 0
        self._stats = BufferStats()
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, message: Any, nbytes: int) -> bool:
        """Store a frame; False if it was refused (counted in `dropped`)."""
        with self._lock:
            if nbytes > self.max_bytes:
                self._stats.dropped += 1
                return False
            if self._stamps and stamp_ns < self._stamps[-1] - self.max_ns:
                return self._behind_window(BufferedFrame(stamp_ns, message, nbytes))
            self._behind.clear()  # the current timeline goes on: earlier stragglers stay refused
            if self._stamps and stamp_ns < self._stamps[-1]:
                self._stats.out_of_order += 1
            self._insert(BufferedFrame(stamp_ns, message, nbytes))
            self._evict()
            return True

    def _insert(self, frame: BufferedFrame) -> None:
        index = bisect.bisect_left(self._stamps, frame.stamp_ns)
        if index < len(self._stamps) and self._stamps[index] == frame.stamp_ns:
            self._bytes -= self._frames[index].nbytes
            self._frames[index] = frame
            self._stats.replaced += 1
        else:
            self._stamps.insert(index, frame.stamp_ns)
            self._frames.insert(index, frame)
        self._bytes += frame.nbytes
        self._stats.stored += 1

    def _behind_window(self, frame: BufferedFrame) -> bool:
        """A frame older than the window: refused, unless it is the `reset_after_frames`-th in a row with
        increasing stamps, which restarts the buffer on that timeline (the held frames are stored then,
        and no longer counted as dropped)."""
        if self._behind and frame.stamp_ns <= self._behind[-1].stamp_ns:
            self._behind.clear()  # not a clock running on: repeated or scattered old stamps
        self._behind.append(frame)
        if len(self._behind) < self.reset_after_frames:
            self._stats.dropped += 1
            return False
        held, self._behind = self._behind, []
        self._stats.dropped -= len(held) - 1
        self._stats.evicted += len(self._frames)
        self._stats.clock_resets += 1
        self._stamps, self._frames, self._bytes = [], [], 0
        for kept in held:
            self._insert(kept)
        self._evict()
        return True

    def _evict(self) -> None:
        newest = self._stamps[-1]
        while self._stamps and (newest - self._stamps[0] > self.max_ns or self._bytes > self.max_bytes):
            self._bytes -= self._frames[0].nbytes
            del self._stamps[0], self._frames[0]
            self._stats.evicted += 1

    def before(self, stamp_ns: int) -> BufferedFrame | None:
        """The last frame at or before `stamp_ns`."""
        with self._lock:
            index = bisect.bisect_right(self._stamps, stamp_ns)
            return self._frames[index - 1] if index else None

    def first_after(self, stamp_ns: int) -> BufferedFrame | None:
        """The first frame at or after `stamp_ns`."""
        with self._lock:
            index = bisect.bisect_left(self._stamps, stamp_ns)
            return self._frames[index] if index < len(self._frames) else None

    def latest_stamp(self) -> int | None:
        """Newest stamp held: tells the worker whether the camera has caught up with a command stamp."""
        with self._lock:
            return self._stamps[-1] if self._stamps else None

    def oldest_stamp(self) -> int | None:
        """Oldest stamp held."""
        with self._lock:
            return self._stamps[0] if self._stamps else None

    def stats(self) -> BufferStats:
        """A consistent snapshot of counters and fill."""
        with self._lock:
            span = (self._stamps[-1] - self._stamps[0]) / 1e9 if self._stamps else 0.0
            return BufferStats(self._stats.stored, self._stats.evicted, self._stats.dropped, self._stats.replaced,
                               self._stats.out_of_order, self._stats.clock_resets, len(self._frames), self._bytes,
                               span)

    @property
    def clock_resets(self) -> int:
        """How often the buffer restarted on a new timeline (read without the lock: one int, for a cheap
        check in the image callback)."""
        return self._stats.clock_resets

    def clear(self) -> None:
        """Forget every frame (counters are kept: they describe the node's life, not the buffer's)."""
        with self._lock:
            self._stamps.clear()
            self._frames.clear()
            self._behind.clear()
            self._bytes = 0

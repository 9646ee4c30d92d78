"""FrameBuffer: lookups by header stamp, bounds by seconds and bytes, out-of-order inserts."""
from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from cde_ros.frame_buffer import FrameBuffer

S = 1_000_000_000


def test_before_and_first_after() -> None:
    buf = FrameBuffer(10.0, 10_000)
    for t in (1, 2, 3):
        buf.add(t * S, f"f{t}", 10)
    assert buf.before(2 * S).message == "f2"  # at or before
    assert buf.before(int(2.5 * S)).message == "f2"
    assert buf.before(S - 1) is None
    assert buf.first_after(int(2.5 * S)).message == "f3"
    assert buf.first_after(3 * S).message == "f3"  # at or after
    assert buf.first_after(3 * S + 1) is None


def test_out_of_order_frames_are_placed_by_stamp() -> None:
    buf = FrameBuffer(10.0, 10_000)
    for t in (1, 3, 2):
        buf.add(t * S, f"f{t}", 10)
    assert buf.first_after(int(1.5 * S)).message == "f2"
    assert buf.before(int(2.5 * S)).message == "f2"
    assert buf.stats().out_of_order == 1 and buf.stats().stored == 3


def test_time_bound_evicts_old_frames_and_refuses_stale_ones() -> None:
    buf = FrameBuffer(2.0, 10_000)
    for t in range(10):
        buf.add(t * S, t, 10)
    stats = buf.stats()
    assert buf.oldest_stamp() == 7 * S and stats.count == 3 and stats.evicted == 7
    assert not buf.add(1 * S, "late", 10)
    assert buf.stats().dropped == 1


def test_clock_jump_back_restarts_the_buffer_after_three_frames_in_a_row() -> None:
    """A restarted camera driver / simulator: stamps jump back an hour and go on from there."""
    buf = FrameBuffer(2.0, 10_000)
    for t in range(3600, 3610):
        buf.add(t * S, f"old{t}", 10)
    assert not buf.add(0, "new0", 10) and not buf.add(S // 10, "new1", 10)  # held, not yet visible
    assert buf.stats().dropped == 2 and buf.before(S) is None and buf.latest_stamp() == 3609 * S
    assert buf.add(2 * S // 10, "new2", 10)  # the third in a row: the camera's clock really jumped back
    stats = buf.stats()
    assert stats.clock_resets == 1 and buf.clock_resets == 1 and stats.dropped == 0
    assert [buf.before(t).message for t in (0, S // 10, S)] == ["new0", "new1", "new2"]
    assert buf.latest_stamp() == 2 * S // 10 and stats.count == 3 and stats.bytes == 30
    assert buf.add(3 * S // 10, "new3", 10) and buf.first_after(S // 4).message == "new3"


def test_stray_old_frames_do_not_restart_the_buffer() -> None:
    buf = FrameBuffer(2.0, 10_000)
    for t in range(100, 110):
        buf.add(t * S, t, 10)
    for _ in range(5):  # a driver's stamp-0 frames, repeated: not a clock running on
        assert not buf.add(0, "zero", 10)
    assert buf.add(110 * S, 110, 10)
    assert not buf.add(S, "a", 10) and not buf.add(2 * S, "b", 10)
    assert buf.add(111 * S, 111, 10)  # the live timeline goes on: the two held frames stay refused
    assert not buf.add(3 * S, "c", 10)  # and the count starts over
    stats = buf.stats()
    assert stats.clock_resets == 0 and stats.dropped == 8 and buf.latest_stamp() == 111 * S


def test_byte_bound_and_oversized_frame() -> None:
    buf = FrameBuffer(100.0, 35)
    for t in range(5):
        buf.add(t * S, t, 10)
    assert buf.stats().bytes <= 35 and buf.stats().count == 3
    assert not buf.add(9 * S, "huge", 36)
    assert buf.stats().dropped == 1


def test_same_stamp_replaces() -> None:
    buf = FrameBuffer(10.0, 1000)
    buf.add(S, "a", 10)
    buf.add(S, "b", 20)
    assert buf.before(S).message == "b" and buf.stats().bytes == 20 and buf.stats().replaced == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50 * S), st.integers(1, 400)), max_size=60),
       st.floats(0.5, 20.0), st.integers(100, 5000))
def test_bounds_hold_for_any_sequence(frames: list[tuple[int, int]], seconds: float, max_bytes: int) -> None:
    buf = FrameBuffer(seconds, max_bytes)
    for stamp, size in frames:
        buf.add(stamp, None, size)
        stats = buf.stats()
        assert stats.bytes <= max_bytes
        assert stats.span_s <= seconds + 1e-9
        newest, oldest = buf.latest_stamp(), buf.oldest_stamp()
        if newest is not None:
            assert buf.before(newest).stamp_ns == newest and buf.first_after(oldest).stamp_ns == oldest


def test_concurrent_adds_and_reads() -> None:
    buf = FrameBuffer(1000.0, 10**9)

    def writer(offset: int) -> None:
        for t in range(2000):
            buf.add((t * 2 + offset) * 1000, t, 1)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for th in threads:
        th.start()
    for _ in range(2000):
        buf.before(10**6)
    for th in threads:
        th.join()
    assert buf.stats().count == 4000


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 20 * S), min_size=1, max_size=40), st.integers(-S, 21 * S))
def test_lookups_agree_with_a_sorted_scan(stamps: list[int], query: int) -> None:
    """before/first_after give what a plain scan of the held stamps gives, whatever the insert order."""
    buf = FrameBuffer(30.0, 10**6)
    for stamp in stamps:
        buf.add(stamp, stamp, 1)
    held = sorted(set(stamps))
    at_or_before = [s for s in held if s <= query]
    at_or_after = [s for s in held if s >= query]
    before, after = buf.before(query), buf.first_after(query)
    assert (before.stamp_ns if before else None) == (at_or_before[-1] if at_or_before else None)
    assert (after.stamp_ns if after else None) == (at_or_after[0] if at_or_after else None)
    assert buf.stats().count == len(held) and buf.stats().replaced == len(stamps) - len(held)

"""Back-pressure: latest-only slot and drop-oldest queue, their counters and wake-ups."""

from __future__ import annotations

import threading

import pytest

from mm_ros.core.queues import DropOldestQueue, LatestSlot, QueueStats


def test_latest_slot_keeps_only_the_newest() -> None:
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        assert slot.put(i)
    assert slot.peek() == 4
    assert slot.get(timeout_s=0) == 4
    assert slot.get(timeout_s=0) is None
    assert slot.stats() == QueueStats(put=5, taken=1, dropped=4, rejected=0, depth=0)


def test_drop_oldest_queue() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(3)
    for i in range(7):
        queue.put(i)
    assert len(queue) == 3
    assert queue.get(0) == 4
    assert queue.drain() == [5, 6]
    assert queue.stats() == QueueStats(put=7, taken=3, dropped=4, rejected=0, depth=0)
    with pytest.raises(ValueError, match="maxlen"):
        DropOldestQueue(0)


@pytest.mark.parametrize("make", [LatestSlot, lambda: DropOldestQueue(4)])
def test_close_rejects_puts_and_wakes_waiters(make) -> None:
    box = make()
    got: list[object] = []
    waiting = threading.Event()

    def consume() -> None:
        waiting.set()
        got.append(box.get(timeout_s=30))

    thread = threading.Thread(target=consume)
    thread.start()
    assert waiting.wait(5)
    box.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert got == [None]
    assert box.put(1) is False
    assert box.stats().rejected == 1
    assert box.closed


@pytest.mark.parametrize("make", [LatestSlot, lambda: DropOldestQueue(2)])
def test_get_wakes_on_put(make) -> None:
    box = make()
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(box.get(timeout_s=30)))
    thread.start()
    box.put("frame")
    thread.join(timeout=5)
    assert got == ["frame"]
    assert box.stats().taken == 1

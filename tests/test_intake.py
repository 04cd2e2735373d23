"""Intake: bad messages are counted by error class and reported; good ones are stored."""

from __future__ import annotations

from mm_ros.core.images import decode_image
from mm_ros.core.intake import Intake
from mm_ros.core.windows import FrameWindow, WindowConfig


def test_intake_counts_rejects_and_keeps_storing() -> None:
    window = FrameWindow(WindowConfig(span_ns=10**9, max_items=10))
    logged: list[tuple[str, str, str]] = []
    intake = Intake("/camera/image_raw", window.add, lambda *drop: logged.append(drop))
    good = intake.offer(lambda: decode_image("mono8", 2, 2, 2, False, b"\0" * 4, stamp_ns=1))
    assert good is not None
    assert intake.offer(lambda: decode_image("rgb8", 4, 2, 4, False, b"\0" * 8)) is None
    assert intake.offer(lambda: decode_image("bayer", 4, 2, 4, False, b"\0" * 8)) is None
    assert intake.offer(lambda: decode_image("mono8", 2, 2, 2, False, b"\0" * 4, stamp_ns=2))
    stats = intake.stats()
    assert stats.accepted == 2
    assert stats.rejected == 2
    assert stats.rejected_by_error == {"SizeMismatchError": 1, "UnsupportedEncodingError": 1}
    assert "bayer" in stats.last_error
    assert "/camera/image_raw" in stats.last_error
    assert [(topic, cause) for topic, cause, _ in logged] == [
        ("/camera/image_raw", "SizeMismatchError"),
        ("/camera/image_raw", "UnsupportedEncodingError"),
    ]
    assert "step 4 != width*3 (12)" in logged[0][2]
    assert len(window) == 2

"""Capture frames with OpenCV: a V4L2 device, a video file, an RTSP/HTTP URL or an image folder.

Frames become core `Frame`s (RGB8) stamped with the wall clock at capture. A live source that
stops delivering (unplugged camera, dropped stream, a file that vanished) is reopened after
``reconnect_s`` with the reason logged, until ``stop``; a file or folder without ``loop`` ends.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mm_ros.core.errors import CameraDeviceError, ConfigError
from mm_ros.core.sensors import Frame, PixelFormat

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("mm_ros.camera")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")
NS_PER_S = 1_000_000_000
URL_TIMEOUT_MS = 5000  # open/read timeout for network streams; then the reconnect loop takes over


class SourceKind(enum.Enum):
    """What ``source`` names."""

    DEVICE = "device"  # an index (0) or a device path (/dev/video0)
    FILE = "file"
    URL = "url"
    FOLDER = "folder"


def source_kind(source: str) -> SourceKind:
    """Classify ``source``; a path that does not exist yet is an error, not a guess."""
    if source.isdigit() or source.startswith("/dev/"):
        return SourceKind.DEVICE
    if source.startswith(URL_SCHEMES):
        return SourceKind.URL
    path = Path(source)
    if path.is_dir():
        return SourceKind.FOLDER
    if path.is_file():
        return SourceKind.FILE
    raise CameraDeviceError(
        f"camera source {source!r} is neither a device index, /dev/ path, URL, folder nor file"
    )


@dataclass(frozen=True)
class CameraSourceConfig:
    """Capture settings, built from the node's parameters."""

    source: str = "0"
    width: int = 0  # 0: the device's current mode
    height: int = 0
    fps: float = 0.0  # devices: requested rate; files/folders: playback rate (0: file's own, 30)
    fourcc: str = ""  # device pixel format, e.g. MJPG or YUYV; empty: the driver's choice
    loop: bool = False  # files and folders: start again at the end
    reconnect_s: float = 1.0  # wait before reopening a dropped source
    frame_id: str = "camera"

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0 or self.fps < 0:
            raise ConfigError(
                f"width, height and fps must be >= 0, found {self.width}, {self.height}, {self.fps}"
            )
        if self.fourcc and len(self.fourcc) != 4:  # noqa: PLR2004 - a FOURCC code
            raise ConfigError(f"fourcc must be 4 characters (MJPG, YUYV), found {self.fourcc!r}")
        if self.reconnect_s <= 0:
            raise ConfigError(f"reconnect_s must be > 0, found {self.reconnect_s}")


def list_devices() -> list[str]:
    """Describe the V4L2 capture devices this machine has (``/dev/videoN: name``)."""
    found = []
    for node in sorted(Path("/sys/class/video4linux").glob("video*")):
        name_file = node / "name"
        name = name_file.read_text().strip() if name_file.is_file() else "?"
        found.append(f"/dev/{node.name}: {name}")
    return found


class _Folder:
    """The images of a folder in name order, read like a capture."""

    def __init__(self, folder: Path) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise CameraDeviceError(
                f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        self.index = 0

    def read(self) -> tuple[bool, Any]:
        import cv2

        if self.index >= len(self.files):
            return False, None
        image = cv2.imread(str(self.files[self.index]), cv2.IMREAD_COLOR)
        self.index += 1
        return image is not None, image

    def release(self) -> None:
        self.index = len(self.files)


class CameraSource:
    """Delivers `Frame`s to a callback from its own thread until stopped."""

    def __init__(self, config: CameraSourceConfig) -> None:
        self.config = config
        self.kind = source_kind(config.source)
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0
        self.reconnects = 0
        self.playback_fps = config.fps

    def open(self) -> Any:
        """Open the source and check the mode; raise `CameraDeviceError` saying why not."""
        import cv2

        c = self.config
        if self.kind is SourceKind.FOLDER:
            self.playback_fps = c.fps or 30.0
            return _Folder(Path(c.source))
        if self.kind is SourceKind.DEVICE:
            target: Any = int(c.source) if c.source.isdigit() else c.source
            if isinstance(target, str) and not Path(target).exists():
                raise CameraDeviceError(f"camera device {target} does not exist: {list_devices()}")
            capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
        elif self.kind is SourceKind.URL:  # a stalled stream must fail a read, not hang it
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, URL_TIMEOUT_MS,
                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, URL_TIMEOUT_MS]  # fmt: skip
            capture = cv2.VideoCapture(c.source, cv2.CAP_FFMPEG, timeouts)
        else:
            capture = cv2.VideoCapture(c.source)
        if not capture.isOpened():
            raise CameraDeviceError(
                f"OpenCV could not open {self.kind.value} {c.source!r}"
                + (
                    f"; devices here: {list_devices() or 'none'}"
                    if self.kind is SourceKind.DEVICE
                    else ""
                )
            )
        if self.kind is SourceKind.DEVICE:
            self._set_mode(capture)
        file_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.playback_fps = c.fps or (file_fps if 0 < file_fps <= 240 else 30.0)  # noqa: PLR2004
        return capture

    def _set_mode(self, capture: Any) -> None:
        import cv2

        c = self.config
        if c.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*c.fourcc))
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, c.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, c.height),
            (cv2.CAP_PROP_FPS, c.fps),
        ):
            if value:
                capture.set(prop, value)
        got = (
            int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        if (c.width and got[0] != c.width) or (c.height and got[1] != c.height):
            capture.release()
            raise CameraDeviceError(
                f"camera {c.source} does not support {c.width}x{c.height}; "
                f"it chose {got[0]}x{got[1]}"
            )

    def start(self, on_frame: Callable[[Frame], None]) -> None:
        """Open the source (errors surface here) and deliver frames from a thread."""
        capture = self.open()
        self._stop.clear()
        self.finished.clear()
        self._thread = threading.Thread(
            target=self._run, args=(capture, on_frame), name="camera-source", daemon=True
        )
        self._thread.start()

    def _reopen(self, reason: str) -> Any:
        """Reopen after ``reconnect_s`` until it works or ``stop``; None once stopped."""
        while not self._stop.is_set():
            self.reconnects += 1
            log.warning(
                "camera %s: %s; reconnecting in %.1f s (attempt %d)",
                self.config.source,
                reason,
                self.config.reconnect_s,
                self.reconnects,
            )
            if self._stop.wait(self.config.reconnect_s):
                return None
            try:
                self.kind = source_kind(self.config.source)
                return self.open()
            except CameraDeviceError as err:
                reason = str(err)
        return None

    def _run(self, capture: Any, on_frame: Callable[[Frame], None]) -> None:
        import cv2

        replayed = self.kind in (SourceKind.FILE, SourceKind.FOLDER)
        next_ns = time.monotonic_ns()
        try:
            while not self._stop.is_set() and capture is not None:
                ok, bgr = capture.read()
                if not ok:
                    capture.release()
                    if replayed and not self.config.loop:
                        return
                    reason = "end of file, looping" if replayed else "the stream stopped delivering"
                    capture = self._reopen(reason) if not replayed else self._loop()
                    continue
                if replayed:  # play at the file's rate, as a camera would deliver it
                    period_ns = round(NS_PER_S / self.playback_fps)
                    next_ns += period_ns
                    late_ns = time.monotonic_ns() - next_ns
                    if late_ns < 0 and self._stop.wait(-late_ns / NS_PER_S):
                        return
                    if late_ns > period_ns:  # fell behind (busy CPU): go on from now, no burst
                        next_ns += late_ns
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                on_frame(Frame(time.time_ns(), self.config.frame_id, rgb, PixelFormat.RGB8))
                self.frames += 1
        finally:
            if capture is not None:
                capture.release()
            self.finished.set()

    def _loop(self) -> Any:
        try:
            return self.open()
        except CameraDeviceError as err:
            return self._reopen(f"cannot reopen for the next loop: {err}")

    def stop(self) -> None:
        """Stop delivering, release the source and wait for the thread; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

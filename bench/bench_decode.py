"""Decode cost per 1920x1080 frame against the bare OpenCV/numpy call, window snapshots, sim."""

from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from mm_ros.core.audio import resample
from mm_ros.core.images import decode_compressed_image, decode_image
from mm_ros.core.sensors import AudioChunk, Frame, ImuSample, Modality, PixelFormat
from mm_ros.core.windows import AudioWindow, FrameWindow, ImuWindow, SensorWindows, WindowConfig
from mm_ros.sim.world import World, WorldConfig

W, H = 1920, 1080
S = 1_000_000_000


def timed(fn, repeats: int = 15) -> float:
    """Median wall time of fn() in ms (after one warm-up call)."""
    return paired([fn], repeats)[0]


def paired(fns, repeats: int = 15) -> list[float]:
    """Median wall time in ms of each function, called in turn within every repeat."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(s) * 1000 for s in samples]


def test_image() -> np.ndarray:
    """A sim frame scaled to 1080p with sensor-like noise (so JPEG has real work to do)."""
    frame = World(WorldConfig(seed=1, duration_s=1.0)).frame(0).frame.pixels
    big = cv2.resize(frame, (W, H), interpolation=cv2.INTER_LINEAR)
    noise = np.random.default_rng(0).normal(0, 4, big.shape)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def image_rows(rgb: np.ndarray) -> list[list[object]]:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    rgba = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    yuv_i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # (H*3/2, W)
    y, u, v = yuv_i420[:H], yuv_i420[H : H + H // 4].reshape(-1), yuv_i420[H + H // 4 :].reshape(-1)
    nv12 = np.concatenate([y.reshape(-1), np.stack([u, v], axis=1).reshape(-1)]).reshape(-1, W)
    # packed 4:2:2 from the same planes (chroma rows repeated)
    u2 = np.repeat(u.reshape(H // 2, W // 2), 2, axis=0)
    v2 = np.repeat(v.reshape(H // 2, W // 2), 2, axis=0)
    uyvy = np.stack([u2, y[:, 0::2], v2, y[:, 1::2]], axis=2).reshape(H, W * 2)
    yuyv = np.stack([y[:, 0::2], u2, y[:, 1::2], v2], axis=2).reshape(H, W * 2)
    mono16 = (gray.astype(np.uint16) * 257).astype("<u2")
    cases = [
        # encoding, step, wire bytes, the bare call a hand-written node would make
        ("rgb8", W * 3, rgb.tobytes(), lambda d: np.frombuffer(d, np.uint8).reshape(H, W, 3)),
        ("bgr8", W * 3, bgr.tobytes(),
         lambda d: cv2.cvtColor(np.frombuffer(d, np.uint8).reshape(H, W, 3), cv2.COLOR_BGR2RGB)),
        ("rgba8", W * 4, rgba.tobytes(),
         lambda d: cv2.cvtColor(np.frombuffer(d, np.uint8).reshape(H, W, 4), cv2.COLOR_RGBA2RGB)),
        ("bgra8", W * 4, bgra.tobytes(),
         lambda d: cv2.cvtColor(np.frombuffer(d, np.uint8).reshape(H, W, 4), cv2.COLOR_BGRA2RGB)),
        ("mono8", W, gray.tobytes(), lambda d: np.frombuffer(d, np.uint8).reshape(H, W)),
        ("mono16", W * 2, mono16.tobytes(), lambda d: np.frombuffer(d, "<u2").reshape(H, W)),
        ("yuv422", W * 2, uyvy.tobytes(),
         lambda d: cv2.cvtColor(np.frombuffer(d, np.uint8).reshape(H, W, 2),
                                cv2.COLOR_YUV2RGB_UYVY)),
        ("yuv422_yuy2", W * 2, yuyv.tobytes(),
         lambda d: cv2.cvtColor(np.frombuffer(d, np.uint8).reshape(H, W, 2),
                                cv2.COLOR_YUV2RGB_YUY2)),
        ("nv12", W, nv12.tobytes(),
         lambda d: cv2.cvtColor(np.frombuffer(d, np.uint8).reshape(H * 3 // 2, W),
                                cv2.COLOR_YUV2RGB_NV12)),
    ]  # fmt: skip
    rows = []
    for encoding, step, data, bare in cases:
        ours, ours_dense, baseline = paired(
            [
                lambda e=encoding, s=step, d=data: decode_image(e, W, H, s, False, d),
                lambda e=encoding, s=step, d=data: np.ascontiguousarray(
                    decode_image(e, W, H, s, False, d).pixels
                ),
                lambda d=data, f=bare: f(d),
            ],
            repeats=21,
        )
        rows.append([encoding, ours, ours_dense, baseline, ours_dense / baseline])
    codecs = (("jpeg", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]), ("png", ".png", []))
    for codec, ext, params in codecs:
        ok, buf = cv2.imencode(ext, bgr, params)
        assert ok
        data = buf.tobytes()

        def bare(d: bytes = data) -> np.ndarray:
            return cv2.cvtColor(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED),
                                cv2.COLOR_BGR2RGB)  # fmt: skip

        ours, baseline = paired(
            [lambda c=codec, d=data: decode_compressed_image(c, d), bare], repeats=11
        )
        rows.append([f"{codec} ({len(data) // 1024} KiB)", ours, ours, baseline, ours / baseline])
    return rows


def filled_windows() -> SensorWindows:
    windows = SensorWindows(
        image=FrameWindow(WindowConfig(span_ns=2 * S, max_items=60)),
        audio=AudioWindow(WindowConfig(span_ns=10 * S, max_items=1000)),
        imu=ImuWindow(WindowConfig(span_ns=5 * S, max_items=2000)),
    )
    pixels = np.zeros((480, 640, 3), np.uint8)
    rng = np.random.default_rng(0)
    for i in range(10 * 50):  # 10 s of 20 ms chunks, 30 Hz frames, 200 Hz IMU
        t = i * 20_000_000
        windows.audio.add(AudioChunk(t, 16_000, rng.normal(0, 0.1, (320, 1)).astype(np.float32)))
        for k in range(4):
            tk = t + k * 5_000_000
            windows.imu.add(ImuSample(tk, "imu", (0.0, 0.0, 9.8), (0.0, 0.0, 0.1), None))
        if i % 5 in (0, 2, 3):  # about 30 Hz
            windows.image.add(Frame(t, "cam", pixels, PixelFormat.RGB8))
    return windows


def run() -> dict[str, object]:
    rgb = test_image()
    rows = image_rows(rgb)
    windows = filled_windows()
    at = windows.newest_ns()
    spans = {Modality.IMAGE: S, Modality.AUDIO: 5 * S, Modality.IMU: 2 * S}
    snapshot_ms = timed(lambda: windows.snapshot(at, spans), repeats=50)
    audio_view_ms = timed(lambda: windows.audio.view(at, 5 * S), repeats=50)
    imu_view_ms = timed(lambda: windows.imu.view(at, 2 * S), repeats=50)
    frame_view_ms = timed(lambda: windows.image.view(at, S), repeats=50)
    speech = np.random.default_rng(1).normal(0, 0.1, 48_000 * 5).astype(np.float32)
    resample_ms = timed(lambda: resample(speech, 48_000, 16_000), repeats=5)

    world = World(WorldConfig(seed=3, duration_s=20.0))
    poses = [world.trajectory.pose(world.frame_time_ns(i)) for i in range(0, 600, 4)]
    start = time.process_time()
    for pose in poses:
        world.renderer.render(pose)
    render_ms = (time.process_time() - start) / len(poses) * 1000
    start = time.process_time()
    for i in range(0, 600, 4):
        world.frame(i)
    frame_ms = (time.process_time() - start) / 150 * 1000
    start = time.process_time()
    World(WorldConfig(seed=4, duration_s=60.0))
    build_ms = (time.process_time() - start) * 1000
    cpu_share = frame_ms * 30 / 1000

    rows += [
        ["window snapshot (1 s image, 5 s audio, 2 s IMU)", snapshot_ms, "", "", ""],
        ["  of which audio view (5 s at 16 kHz)", audio_view_ms, "", "", ""],
        ["  of which IMU view (2 s at 200 Hz)", imu_view_ms, "", "", ""],
        ["  of which frame view (1 s at 30 Hz)", frame_view_ms, "", "", ""],
        ["resample 5 s 48 kHz -> 16 kHz", resample_ms, "", "", ""],
        ["sim render 640x480 (CPU time)", render_ms, "", "", ""],
        ["sim frame + ground truth (CPU time)", frame_ms, "", "", ""],
        ["sim episode build, 60 s (path, IMU, audio)", build_ms, "", "", ""],
    ]
    by_name = {r[0]: r for r in rows}
    jpeg = next(r for r in rows if str(r[0]).startswith("jpeg"))
    view_encodings = ("rgb8", "mono8", "mono16")
    worst_view_ms = max(by_name[e][1] for e in view_encodings)
    budgets = [
        {"what": "JPEG decode / bare cv2.imdecode+cvtColor", "value": jpeg[4], "limit": 1.1,
         "met": jpeg[4] <= 1.1},
        {"what": "bgr8/rgba8/bgra8 decode / bare cv2.cvtColor, worst",
         "value": max(by_name[e][4] for e in ("bgr8", "rgba8", "bgra8")), "limit": 1.2,
         "met": max(by_name[e][4] for e in ("bgr8", "rgba8", "bgra8")) <= 1.2},
        {"what": "YUV/NV12 decode (dense) / bare cv2.cvtColor, worst",
         "value": max(by_name[e][4] for e in ("yuv422", "yuv422_yuy2", "nv12")), "limit": 1.5,
         "met": max(by_name[e][4] for e in ("yuv422", "yuv422_yuy2", "nv12")) <= 1.5},
        {"what": "rgb8/mono8/mono16 decode (a view) / bgr8 bare cvtColor", "value":
         worst_view_ms / by_name["bgr8"][3], "limit": 0.1,
         "met": worst_view_ms / by_name["bgr8"][3] <= 0.1},
        {"what": "sim_world CPU share of one core at 30 Hz", "value": cpu_share, "limit": 0.5,
         "met": cpu_share <= 0.5},
    ]  # fmt: skip
    return {
        "title": "Sensor decoding, windows and the synthetic world",
        "summary": (
            "Decode cost of one 1920x1080 frame per encoding (median ms): `decode` is what a "
            "callback pays (rgb8, mono8 and mono16 come back as views of the message buffer, no "
            "copy; channel swaps are one OpenCV call), `dense` adds np.ascontiguousarray, `bare` "
            "is the OpenCV/numpy call a hand-written node would make, timed alternately with "
            "ours in the same loop (medians) so that machine noise hits both alike. Then window "
            "snapshots for a question over 10 s audio / 5 s IMU / 2 s frames held, and the "
            "synthetic world: render and ground truth per 640x480 frame; at 30 Hz it takes "
            f"{cpu_share:.0%} of one core."
        ),
        "columns": ["what", "decode ms", "dense ms", "bare ms", "dense / bare"],
        "rows": [
            [r[0], *[round(v, 4) if isinstance(v, float) else v for v in r[1:]]] for r in rows
        ],
        "budgets": budgets,
        "figures": {
            "decode_ms": {r[0]: r[1] for r in rows[:11]},
            "dense_ms": {r[0]: r[2] for r in rows[:11]},
            "bare_ms": {r[0]: r[3] for r in rows[:11]},
            "snapshot_ms": snapshot_ms,
            "audio_view_ms": audio_view_ms,
            "imu_view_ms": imu_view_ms,
            "frame_view_ms": frame_view_ms,
            "resample_5s_48k_to_16k_ms": resample_ms,
            "sim_render_ms": render_ms,
            "sim_frame_with_truth_ms": frame_ms,
            "sim_cpu_share_30hz": cpu_share,
            "sim_episode_build_60s_ms": build_ms,
        },
    }

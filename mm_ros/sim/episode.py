"""Write (and read back) an episode as ``<name>.npz`` (arrays) + ``<name>.json`` (truth, config).

Both files are byte-identical for the same config: the zip entries carry a fixed date, arrays are
written in a fixed order with a fixed deflate level, and the JSON has sorted keys.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from mm_ros.sim.world import World, WorldConfig, _jsonable

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date zip can store: no wall-clock in the bytes


def _write_npz(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compresslevel=6)


def write_episode(config: WorldConfig, directory: Path, name: str = "episode") -> tuple[Path, Path]:
    """Generate the episode of ``config`` and write it; return the (.npz, .json) paths.

    The npz holds ``frames`` (N, H, W, 3) uint8 RGB, ``frame_stamps_ns`` (N,), ``imu_stamps_ns``
    (M,), ``imu_accel_mps2`` / ``imu_gyro_rps`` (M, 3), ``imu_orientation_xyzw`` (M, 4) and
    ``audio`` (S,) float32 mono at ``sound.rate_hz``; the JSON holds the config, camera info,
    scene, motion segments, audio events and one ground-truth record per frame.
    """
    directory.mkdir(parents=True, exist_ok=True)
    world = World(config)
    frames = np.empty((world.frame_count, config.height_px, config.width_px, 3), dtype=np.uint8)
    truths = []
    for index in range(world.frame_count):
        sim_frame = world.frame(index)
        frames[index] = sim_frame.frame.pixels
        truths.append(sim_frame.truth.to_dict())
    imu = world.imu_series
    npz = directory / f"{name}.npz"
    _write_npz(
        npz,
        {
            "frames": frames,
            "frame_stamps_ns": np.array(
                [world.frame_time_ns(i) for i in range(world.frame_count)], dtype=np.int64
            ),
            "imu_stamps_ns": imu.t_ns,
            "imu_accel_mps2": imu.accel_mps2,
            "imu_gyro_rps": imu.gyro_rps,
            "imu_orientation_xyzw": imu.orientation_xyzw,
            "audio": world.audio,
        },
    )
    document = {
        "format": "mm_ros.sim episode 1",
        "config": _jsonable(dataclasses.replace(config)),
        "camera": _jsonable(world.camera),
        "scene": _jsonable(world.scene),
        "segments": _jsonable(world.trajectory.segments),
        "sound_events": _jsonable(world.events),
        "frames": truths,
    }
    meta = directory / f"{name}.json"
    meta.write_text(json.dumps(document, sort_keys=True, indent=1) + "\n")
    return npz, meta


def read_episode(npz: Path, meta: Path) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Load an episode written by `write_episode`: (arrays, JSON document)."""
    with np.load(npz, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    document: dict[str, Any] = json.loads(meta.read_text())
    return arrays, document

"""Synthetic world: determinism, IMU vs rendered motion, boxes vs masks, audio onsets."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from mm_ros.core.camera import decode_camera_info, encode_camera_info
from mm_ros.core.errors import ConfigError
from mm_ros.core.imu import decode_imu, encode_imu
from mm_ros.core.sensors import Bearing, Side
from mm_ros.sim.episode import read_episode, write_episode
from mm_ros.sim.motion import Motion, MotionConfig
from mm_ros.sim.render import box_iou, mask_box
from mm_ros.sim.scene import Colour, SceneConfig, Shape
from mm_ros.sim.sound import Sound, SoundConfig
from mm_ros.sim.world import World, WorldConfig

S = 1_000_000_000
SEEDS = [0, 7, 21]


@pytest.fixture(scope="module", params=SEEDS)
def world(request) -> World:
    return World(WorldConfig(seed=request.param, duration_s=20.0), start_ns=1000 * S)


def test_same_seed_same_bytes(tmp_path) -> None:
    config = WorldConfig(seed=5, duration_s=1.0)
    first = write_episode(config, tmp_path / "a")
    second = write_episode(config, tmp_path / "b")
    other = write_episode(WorldConfig(seed=6, duration_s=1.0), tmp_path / "c")
    for a, b, c in zip(first, second, other, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()
    arrays, document = read_episode(*first)
    assert arrays["frames"].shape == (30, 480, 640, 3)
    assert arrays["audio"].shape == (16_000,)
    assert arrays["imu_gyro_rps"].shape == (arrays["imu_stamps_ns"].size, 3)
    assert len(document["frames"]) == 30
    assert document["frames"][0]["objects"][0]["name"]


def test_step_delivers_every_stream_at_its_rate(world: World) -> None:
    start = world.start_ns
    frames, imu, audio = [], [], []
    for tick in range(1, 21):  # 2 s in uneven steps, as a node timer would
        step = world.step(start + tick * S // 10 + (tick % 3) * 1_000_000)
        frames += step.frames
        imu += step.imu
        audio += step.audio
    assert len(frames) == 61  # t = 0 .. 2 s inclusive at 30 Hz
    assert len(imu) == 401
    assert len(audio) == 100  # 20 ms chunks that are complete by 2 s
    for stamps in ([f.frame.stamp_ns for f in frames], [s.stamp_ns for s in imu],
                   [c.stamp_ns for c in audio]):  # fmt: skip
        assert stamps[0] == start
        assert (np.diff(stamps) > 0).all()
    assert frames[0].frame.pixels.shape == (480, 640, 3)
    assert frames[0].frame.frame_id == world.camera.frame_id
    fields = encode_imu(imu[0], world.imu_variance)
    assert fields.angular_velocity_covariance[0] == pytest.approx(0.003**2)
    assert decode_imu(*fields) == replace(imu[0], stamp_ns=0, frame_id="")
    assert world.step(start + 2 * S).frames == ()  # nothing twice


def test_camera_info_is_consistent_with_the_render(world: World) -> None:
    fields = encode_camera_info(world.camera)
    camera = decode_camera_info(fields.width, fields.height, fields.distortion_model, fields.d,
                                fields.k)  # fmt: skip
    assert (camera.width, camera.height) == (640, 480)
    checked = 0
    for index in range(0, world.frame_count, 15):
        truth = world.frame(index).truth
        for obj in truth.objects:
            box = obj.full_box_px
            if box is None or obj.distance_m < 4 or obj.visible_fraction < 1:
                continue
            if box[0] <= 0 or box[2] >= 639:
                continue  # cut by the image border: its middle is not its centre
            middle = camera.bearing((box[0] + box[2]) / 2, camera.cy)
            assert middle.azimuth_deg == pytest.approx(obj.azimuth_deg, abs=2.0)
            u = (box[0] + box[2]) / 2
            assert obj.side is Bearing(obj.azimuth_deg, 0).side(10.0)
            if obj.side is Side.LEFT:
                assert u < camera.cx
            elif obj.side is Side.RIGHT:
                assert u > camera.cx
            checked += 1
    assert checked > 5


def test_integrated_gyro_yaw_matches_rendered_yaw(world: World) -> None:
    """Tolerance 1 deg over 20 s: gyro bias <= 0.0005 rad/s (0.57 deg) plus white noise."""
    imu = world.imu_series
    dt = np.diff(imu.t_ns) / S
    gyro_yaw = np.concatenate(
        [[0.0], np.cumsum((imu.gyro_rps[1:, 2] + imu.gyro_rps[:-1, 2]) / 2 * dt)]
    )
    for index in range(0, world.frame_count, 10):
        t = world.frame_time_ns(index)
        rendered_yaw = world.frame(index).truth.pose[3]
        integrated = np.interp(t, imu.t_ns, gyro_yaw)
        assert math.degrees(abs(integrated - rendered_yaw)) < 1.0, index


def test_imu_matches_motion_labels(world: World) -> None:
    imu = world.imu_series
    ramp = int(world.config.motion.ramp_s * S)
    for segment in world.trajectory.segments:
        inside = (imu.t_ns >= segment.start_ns + ramp) & (imu.t_ns < segment.end_ns)
        if inside.sum() < 20:
            continue
        gyro_z = imu.gyro_rps[inside, 2].mean()
        accel = imu.accel_mps2[inside].mean(axis=0)
        if segment.motion is not Motion.FORWARD:  # the head bob averages out over whole steps
            assert accel[2] == pytest.approx(9.80665, abs=0.05)
        if segment.motion is Motion.TURN_LEFT:
            assert gyro_z > math.radians(20)
        elif segment.motion is Motion.TURN_RIGHT:
            assert gyro_z < -math.radians(20)
        else:
            assert abs(gyro_z) < math.radians(1)
        if segment.motion is Motion.FORWARD:
            bob = imu.accel_mps2[inside, 2].std()
            assert bob > 0.5  # walking shows in the vertical acceleration
    assert imu.accel_mps2[:, 2].mean() == pytest.approx(9.80665, abs=0.1)
    assert {s.motion for s in world.trajectory.segments} >= {Motion.FORWARD}


def test_boxes_match_rendered_masks(world: World) -> None:
    """Full boxes vs each object rendered alone, visible boxes vs the label image: IoU >= 0.9."""
    ious = []
    for index in range(0, world.frame_count, 40):
        sim = world.frame(index)
        pose = sim.truth.pose
        rendered = world.renderer.render(pose)
        for obj in sim.truth.objects:
            if not obj.in_view:
                assert obj.box_px is None
                assert obj.visible_fraction == 0.0
                continue
            alone = world.renderer.render(pose, only=obj.index)
            alone_box = mask_box(alone.labels == obj.index)
            ious.append(box_iou(obj.full_box_px, alone_box))
            visible = rendered.labels == obj.index
            assert box_iou(obj.box_px, mask_box(visible)) == pytest.approx(1.0)
            # the label image is what the colour image shows: object pixels differ from the sky
            # and ground behind them
            background = world.renderer.render(pose, only=-1).image
            differs = (rendered.image[visible] != background[visible]).any(axis=1).mean()
            assert differs > 0.98
            assert 0 < obj.visible_fraction <= 1
    assert ious
    assert min(ious) >= 0.9


def detect_onsets(audio: np.ndarray, rate: int, floor_rms: float) -> list[float]:
    """Onsets (s) where the 1 ms RMS rises above 10x the room tone after 150 ms of quiet."""
    hop = rate // 1000
    frames = audio[: audio.size // hop * hop].reshape(-1, hop)
    loud = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 10 * floor_rms
    onsets, quiet = [], 150
    for i, is_loud in enumerate(loud):
        if is_loud and quiet >= 150:
            onsets.append(i / 1000)
        quiet = 0 if is_loud else quiet + 1
    return onsets


def test_audio_event_onsets_within_10_ms(world: World) -> None:
    rate = world.config.sound.rate_hz
    detected = detect_onsets(world.audio, rate, world.config.sound.room_tone_rms)
    truth = [e.onset_ns / S for e in world.events if e.sound is not Sound.SILENCE]
    assert len(detected) == len(truth)
    for found, expected in zip(detected, truth, strict=True):
        assert abs(found - expected) <= 0.010


def test_ground_truth_answers_the_questions(world: World) -> None:
    names = [o.name for o in world.scene.objects]
    assert len(names) == len(set(names))  # "the red cube" is unique
    motions, sounds, sides = set(), set(), set()
    for index in range(0, world.frame_count, 5):
        truth = world.frame(index).truth
        motions.add(truth.motion)
        if truth.last_sound is not None:
            sounds.add(truth.last_sound.sound)
            assert truth.last_sound.onset_ns <= truth.stamp_ns
        sides |= {o.side for o in truth.objects if o.in_view}
        record = json.loads(truth.to_json())
        assert record["motion"] == truth.motion.value
        assert all(isinstance(o["colour"], str) for o in record["objects"])
    assert len(motions) >= 3
    assert len(sounds) >= 3
    assert len(sides) >= 2


def test_scenes_vary_across_seeds() -> None:
    counts, shapes, colours, occluded, distances = set(), set(), set(), 0, []
    for seed in range(12):
        world = World(WorldConfig(seed=seed, duration_s=3.0))
        counts.add(len(world.scene.objects))
        shapes |= {o.shape for o in world.scene.objects}
        colours |= {o.colour for o in world.scene.objects}
        truth = world.frame(45).truth
        occluded += sum(1 for o in truth.objects if 0 < o.visible_fraction < 0.9)
        distances += [o.distance_m for o in truth.objects if o.in_view]
    assert len(counts) >= 3
    assert shapes == set(Shape)
    assert len(colours) >= 4
    assert set(Colour) == colours
    assert occluded >= 1
    assert min(distances) < 4
    assert max(distances) > 8


def test_episodes_chain_without_a_clock_jump() -> None:
    world = World(WorldConfig(seed=2, duration_s=1.0), start_ns=5 * S)
    step = world.step(world.end_ns + S)
    assert world.finished
    assert len(step.frames) == 30
    following = world.next_episode()
    assert following.config.seed == 3
    assert following.start_ns == world.end_ns
    first = following.step(following.start_ns)
    assert first.frames[0].frame.stamp_ns > step.frames[-1].frame.stamp_ns
    assert first.imu[0].stamp_ns > step.imu[-1].stamp_ns
    assert first.audio == ()  # the first chunk completes 20 ms later
    assert len(step.imu) == 200


@pytest.mark.parametrize(
    "make",
    [
        lambda: WorldConfig(duration_s=0),
        lambda: WorldConfig(imu_rate_hz=300),
        lambda: SceneConfig(min_objects=5, max_objects=3),
        lambda: MotionConfig(walk_speed_mps=(2.0, 1.0)),
        lambda: MotionConfig(ramp_s=5.0),
        lambda: SoundConfig(rate_hz=4000),
    ],
)
def test_bad_configs_are_refused(make) -> None:
    with pytest.raises(ConfigError):
        make()

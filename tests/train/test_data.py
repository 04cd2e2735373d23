from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mm_ros.core.errors import ConfigError
from mm_ros.core.preprocessing import ResizeMode, preprocess_image
from mm_ros.core.sensors import Modality
from mm_ros.sim.world import World
from mm_ros.train import data, tasks
from mm_ros.train.tasks import Kind


def test_same_seed_same_data(small_inputs: data.Inputs, small_dataset: data.Dataset) -> None:
    config = data.DataConfig(seeds=data.train_seeds(2), snapshots_per_episode=4, duration_s=8.0)
    again = data.build_dataset(config, small_inputs)
    assert np.array_equal(again.images, small_dataset.images)
    assert np.array_equal(again.audio, small_dataset.audio)
    assert np.array_equal(again.imu, small_dataset.imu)
    assert again.examples == small_dataset.examples


def test_other_seed_other_data(small_inputs: data.Inputs, small_dataset: data.Dataset) -> None:
    config = data.DataConfig(seeds=(5,), snapshots_per_episode=4, duration_s=8.0)
    other = data.build_dataset(config, small_inputs)
    assert not np.array_equal(other.images, small_dataset.images[:4])


def test_examples_only_matches_the_dataset(small_dataset: data.Dataset) -> None:
    config = data.DataConfig(seeds=data.train_seeds(2), snapshots_per_episode=4, duration_s=8.0)
    plain = data.examples_only(config)
    assert [dataclasses.replace(e, snap=-1) for e in small_dataset.examples] == plain


def test_train_and_heldout_seeds_are_disjoint() -> None:
    # far more episodes than any run uses, on both sides
    assert not set(data.train_seeds(100_000)) & set(data.heldout_seeds(100_000))


def test_every_kind_is_asked(small_dataset: data.Dataset) -> None:
    kinds = {e.kind for e in small_dataset.examples}
    assert {Kind.SIDE.value, Kind.MOTION.value, Kind.CAPTION.value} <= kinds
    assert all(0 <= e.snap < len(small_dataset.images) for e in small_dataset.examples)


def test_unseen_phrasings_are_held_out_templates() -> None:
    from mm_ros.train import phrasing

    config = data.DataConfig(seeds=(3,), snapshots_per_episode=3, duration_s=6.0,
                             unseen_phrasings=True)  # fmt: skip
    examples = data.examples_only(config)
    assert examples
    assert all(e.unseen for e in examples)
    trained = {t for templates in phrasing.TEMPLATES.values() for t in templates}
    held = {t for templates in phrasing.HELD_OUT.values() for t in templates}
    assert not trained & held


def test_typed_and_inferred_questions() -> None:
    config = data.DataConfig(seeds=data.train_seeds(3), snapshots_per_episode=10,
                             every_object=True, every_side=True)  # fmt: skip
    examples = data.examples_only(config)
    typed = {(e.kind, e.typed) for e in examples}
    # box questions both as "[grounding] where is X?" and "find X"; refer always typed
    assert {(Kind.GROUNDING.value, True), (Kind.GROUNDING.value, False)} <= typed
    assert (Kind.REFER.value, False) not in typed
    assert (Kind.SIDE.value, True) not in typed
    absent = [e for e in examples if e.kind == Kind.ABSENT.value]
    assert {e.truth["asked"] for e in absent} == {"where", "typed", "plain"}
    for e in absent:
        assert e.answer == f"i do not see the {e.truth['name']}."
        assert e.task == ("spatial" if e.truth["asked"] == "where" else "grounding")
    # every side is asked about, unless an object is on its border
    by_frame = {}
    for e in examples:
        if e.kind == Kind.LIST.value:
            by_frame.setdefault((e.seed, e.frame), []).append(e.truth["side"])
    assert max(len(sides) for sides in by_frame.values()) == 3
    assert all(len(set(sides)) == len(sides) for sides in by_frame.values())


def test_answers_carry_their_truth(small_dataset: data.Dataset) -> None:
    for e in small_dataset.examples:
        if e.kind == Kind.GROUNDING.value:
            assert e.answer == tasks.grounded(e.truth["name"], e.truth["percent"])
            assert all(0 <= v <= 100 for v in e.truth["percent"])
        if e.kind == Kind.MOTION.value:
            assert tasks.motion_of_text(e.answer) == e.truth["motion"]
        if e.kind == Kind.AUDIO.value:
            assert tasks.sound_of_text(e.answer) == e.truth["sound"]
        if e.kind == Kind.SIDE.value:
            assert tasks.side_of_text(e.answer) == e.truth["side"]


def test_snapshot_is_the_service_view(small_inputs: data.Inputs) -> None:
    world = World(data.world_config(1000, data.DataConfig(seeds=(1000,), duration_s=4.0)))
    snapshot, truth = data.snapshot_at(world, 60, small_inputs)
    stamp = world.frame_time_ns(60)
    assert snapshot.at_ns == stamp == truth.stamp_ns
    assert snapshot.image is not None
    assert snapshot.image.frames[-1].stamp_ns == stamp
    assert snapshot.audio is not None
    assert snapshot.audio.samples.size == 16000
    assert snapshot.audio.coverage > 0.97  # the newest 20 ms chunk may still be in flight
    spans = small_inputs.spans_ns()
    assert snapshot.imu is not None
    assert snapshot.imu.stamps_ns[0] >= stamp - spans[Modality.IMU]
    image, audio, imu = data.preprocess(snapshot, small_inputs)
    frame = world.frame(60).frame.rgb()
    expected, _ = preprocess_image(frame, small_inputs.image_px, ResizeMode.SQUASH,
                                   small_inputs.image_mean, small_inputs.image_std)  # fmt: skip
    assert np.array_equal(image, expected)
    first = (stamp - 1_000_000_000) * 16000 // 1_000_000_000
    assert np.allclose(audio[:300], world.audio[first : first + 300])
    assert imu.shape == (50, 6)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="seeds"):
        data.DataConfig(seeds=())
    with pytest.raises(ConfigError, match="absent_share"):
        data.DataConfig(seeds=(1,), absent_share=1.0)


def test_cache_round_trip(tmp_path, small_inputs: data.Inputs) -> None:  # type: ignore[no-untyped-def]
    config = data.DataConfig(seeds=(1001,), snapshots_per_episode=2, duration_s=4.0)
    built = data.load_or_build(config, small_inputs, tmp_path)
    assert len(list(tmp_path.glob("data-*.npz"))) == 1
    cached = data.load_or_build(config, small_inputs, tmp_path)
    assert np.array_equal(built.images, cached.images)
    assert built.examples == cached.examples
    assert built.objects == cached.objects


def test_objects_are_the_visible_ones_nearest_first(small_dataset: data.Dataset) -> None:
    assert len(small_dataset.objects) == len(small_dataset.images)
    width, height = small_dataset.image_size
    assert any(small_dataset.objects)
    for objects in small_dataset.objects:
        for obj in objects:
            x1, y1, x2, y2 = obj["box_px"]
            assert -0.5 <= x1 < x2 <= width  # pixel edges: the first pixel spans -0.5..0.5
            assert -0.5 <= y1 < y2 <= height
            assert obj["side"] in ("left", "centre", "right")
    # the questions about a snapshot name only objects in its list
    for e in small_dataset.of_kind(Kind.GROUNDING):
        names = {f"{o['colour']} {o['shape']}" for o in small_dataset.objects[e.snap]}
        assert e.truth["name"] in names


def test_every_object_asks_about_each_object_once() -> None:
    one = data.DataConfig(seeds=(1003,), snapshots_per_episode=6, duration_s=8.0)
    every = dataclasses.replace(one, every_object=True)

    def per_snapshot(config: data.DataConfig, kind: Kind) -> list[list[str]]:
        out: dict[int, list[str]] = {}
        for e in data.examples_only(config):
            if e.kind == kind.value:
                out.setdefault(e.frame, []).append(e.truth["name"])
        return list(out.values())

    for kind in (Kind.GROUNDING, Kind.IDENTIFY):
        assert all(len(names) == 1 for names in per_snapshot(one, kind))
        asked = per_snapshot(every, kind)
        assert max(len(names) for names in asked) > 1
        assert all(len(names) == len(set(names)) for names in asked)


def test_boxes_are_asked_exactly_about_objects_shown_enough() -> None:
    config = data.DataConfig(seeds=(1003,), snapshots_per_episode=6, duration_s=8.0,
                             every_object=True)  # fmt: skip
    world = World(data.world_config(1003, config))
    asked: dict[int, set[str]] = {}
    for e in data.examples_only(config):
        if e.kind == Kind.GROUNDING.value:
            asked.setdefault(e.frame, set()).add(e.truth["name"])
            objects = world.frame(e.frame).truth.objects
            others = [o.name for o in objects if o.in_view and o.box_px is not None]
            others.remove(e.truth["name"])
            assert sorted(o["name"] for o in e.truth["others"]) == sorted(others)
            assert all(len(o["box_px"]) == 4 for o in e.truth["others"])
    assert asked
    for frame, names in asked.items():
        objects = world.frame(frame).truth.objects
        shown = {
            o.name
            for o in objects
            if o.in_view and data.shown_enough(o.box_px, o.visible_fraction, config, boxed=True)
        }
        assert names == shown
    # the box rule is the stricter one: a 22 px box is clear but not asked for
    assert data.shown_enough((0.0, 0.0, 22.0, 40.0), 0.9, config, boxed=False)
    assert not data.shown_enough((0.0, 0.0, 22.0, 40.0), 0.9, config, boxed=True)
    assert not data.shown_enough((0.0, 0.0, 40.0, 40.0), 0.5, config, boxed=False)
    assert not data.shown_enough(None, 1.0, config, boxed=False)

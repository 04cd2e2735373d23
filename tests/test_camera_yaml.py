"""Calibration files in the standard ROS camera_info YAML format."""

from __future__ import annotations

import pytest
import yaml

from mm_ros.core.camera_yaml import camera_model_from_yaml
from mm_ros.core.errors import ConfigError

CALIBRATION = """\
image_width: 64
image_height: 48
camera_name: headset
camera_matrix:
  rows: 3
  cols: 3
  data: [50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.05, 0.001, 0.002, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [50.0, 0.0, 32.0, 0.0, 0.0, 51.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_standard_file_reads_into_a_camera_model() -> None:
    model = camera_model_from_yaml(yaml.safe_load(CALIBRATION), "cam")
    assert (model.width, model.height, model.frame_id) == (64, 48, "cam")
    assert model.k == (50.0, 0.0, 32.0, 0.0, 51.0, 24.0, 0.0, 0.0, 1.0)
    assert model.distortion_model == "plumb_bob"
    assert model.d == (0.1, -0.05, 0.001, 0.002, 0.0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("camera_matrix"), "lacks camera_matrix"),
        (lambda d: d["camera_matrix"].update(rows=2), "is 2x3, expected 3x3"),
        (lambda d: d["camera_matrix"]["data"].pop(), "has 8 values"),
        (lambda d: d.update(image_width=0), "image size must be > 0"),
        (lambda d: d.update(camera_matrix=[1, 2]), "camera_matrix must be a mapping"),
    ],
)
def test_malformed_files_say_what_is_wrong(edit, message: str) -> None:
    doc = yaml.safe_load(CALIBRATION)
    edit(doc)
    with pytest.raises(ConfigError, match=message):
        camera_model_from_yaml(doc)


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping, found list"):
        camera_model_from_yaml([1, 2])

"""The static part of a synthetic episode: coloured shapes on a ground plane, and the lighting.

World frame (REP 103): x forward at the start, y left, z up, metres; the camera starts at the
origin looking along +x.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mm_ros.core.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


class Shape(enum.Enum):
    """Object shapes; each renders with a distinct silhouette and shading."""

    CUBE = "cube"
    BALL = "ball"
    CONE = "cone"
    CYLINDER = "cylinder"


class Colour(enum.Enum):
    """Object colours with their albedo as RGB 0..255, far apart in hue under any lighting."""

    RED = (215, 35, 35)
    GREEN = (40, 165, 55)
    BLUE = (40, 80, 225)
    YELLOW = (230, 205, 30)
    PURPLE = (145, 55, 185)
    ORANGE = (245, 130, 20)

    @property
    def label(self) -> str:
        """Lower-case name used in text ("red")."""
        return self.name.lower()


@dataclass(frozen=True)
class SceneObject:
    """One shape standing on the ground."""

    index: int  # 1-based; 0 is the background in label images
    shape: Shape
    colour: Colour
    x_m: float  # centre of the footprint, world frame
    y_m: float
    size_m: float  # cube side, ball/cone/cylinder diameter
    height_m: float  # cube side, ball diameter, cone/cylinder height
    yaw_rad: float  # rotation about z (cubes only look different)

    @property
    def name(self) -> str:
        """What a person would call it: "red cube"."""
        return f"{self.colour.label} {self.shape.value}"

    @property
    def radius_m(self) -> float:
        """Radius of the footprint's bounding circle."""
        if self.shape is Shape.CUBE:
            return self.size_m * math.sqrt(0.5)
        return self.size_m / 2


@dataclass(frozen=True)
class Lighting:
    """Directional sun plus ambient; varied per episode so colour alone is not a fixed prior."""

    direction: tuple[float, float, float]  # unit vector towards the light, world frame
    ambient: float  # 0..1 share of albedo lit from everywhere
    diffuse: float  # 0..1 share lit by the sun at normal incidence
    sky_rgb: tuple[int, int, int]
    ground_rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """Objects and lighting of one episode."""

    objects: tuple[SceneObject, ...]
    lighting: Lighting


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn at random."""

    # 6..14 of the 24 (shape, colour) pairs around the wearer: with a 77 deg view about two are
    # in sight at a time (none in about one frame in five), and turning always finds more.
    min_objects: int = 6
    max_objects: int = 14
    # Objects from 2.5 m (a step away, fully in view) to 12 m (small but still ~20 px tall).
    min_distance_m: float = 2.5
    max_distance_m: float = 12.0
    min_size_m: float = 0.4
    max_size_m: float = 1.2
    # Footprints at least this far apart, so objects never intersect and depth order is clear.
    clearance_m: float = 0.4

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= len(Shape) * len(Colour):
            raise ConfigError(
                f"SceneConfig needs 1 <= min_objects <= max_objects <= {len(Shape) * len(Colour)},"
                f" found {self.min_objects}..{self.max_objects}"
            )


def make_scene(config: SceneConfig, rng: np.random.Generator) -> Scene:
    """Draw a scene: distinct (shape, colour) pairs, so "the red cube" is always unique."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    pairs = [(s, c) for s in Shape for c in Colour]
    chosen = rng.permutation(len(pairs))[:count]
    objects: list[SceneObject] = []
    for index, pair_index in enumerate(chosen, start=1):
        shape, colour = pairs[int(pair_index)]
        size = float(rng.uniform(config.min_size_m, config.max_size_m))
        height = {
            Shape.CUBE: size,
            Shape.BALL: size,
            Shape.CONE: size * float(rng.uniform(1.1, 1.8)),
            Shape.CYLINDER: size * float(rng.uniform(0.8, 1.6)),
        }[shape]
        for _attempt in range(200):
            distance = float(rng.uniform(config.min_distance_m, config.max_distance_m))
            bearing = float(rng.uniform(-math.pi, math.pi))
            x, y = distance * math.cos(bearing), distance * math.sin(bearing)
            candidate = SceneObject(
                index, shape, colour, x, y, size, height, float(rng.uniform(0, math.pi / 2))
            )
            if all(
                math.hypot(x - o.x_m, y - o.y_m)
                >= candidate.radius_m + o.radius_m + config.clearance_m
                for o in objects
            ):
                objects.append(candidate)
                break
    elevation = float(rng.uniform(math.radians(30), math.radians(75)))
    azimuth = float(rng.uniform(-math.pi, math.pi))
    direction = (
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    )
    exposure = float(rng.uniform(0.75, 1.15))
    sky = tuple(int(v * exposure) for v in rng.uniform([120, 150, 190], [175, 205, 245]))
    ground = tuple(int(v * exposure) for v in rng.uniform([95, 90, 80], [140, 130, 115]))
    lighting = Lighting(
        direction=direction,
        ambient=float(rng.uniform(0.25, 0.45)) * exposure,
        diffuse=float(rng.uniform(0.5, 0.7)) * exposure,
        sky_rgb=(sky[0], sky[1], sky[2]),
        ground_rgb=(ground[0], ground[1], ground[2]),
    )
    return Scene(objects=tuple(objects), lighting=lighting)

"""Render a `Scene` from a camera pose with OpenCV polygon fills (painter's algorithm).

Shapes are convex meshes (cube: 6 faces, cylinder and cone: 24 sides, ball: its exact
silhouette with highlight layers). Faces are Lambert-shaded once per episode (the shade of a face
does not depend on the viewpoint), culled by their normal, clipped to the near plane, and drawn
far to near. A label image drawn with the same polygons says which object owns each pixel.
Pixel (u, v) is centred on integer coordinates; boxes are (x0, y0, x1, y1) in continuous pixel
coordinates, i.e. a mask's box runs from its first column - 0.5 to its last column + 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from mm_ros.sim.scene import Scene, SceneObject, Shape

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from mm_ros.core.sensors import CameraModel

NEAR_M = 0.05  # near clipping plane
SIDES = 24  # facets of cylinders and cones: smooth enough, cheap enough
SHIFT = 4  # OpenCV sub-pixel bits: coordinates are drawn in 1/16 px
GRID_STEP_M = 2.0  # ground grid lines, for optical flow while walking
GRID_EXTENT_M = 16.0
BALL_LAYERS = ((1.0, 0.55), (0.8, 0.75), (0.55, 0.95), (0.25, 1.15))  # (scale, brightness)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class _Face:
    vertices: NDArray[np.float64]  # (K, 3) world frame, convex, counter-clockwise seen outside
    normal: NDArray[np.float64]  # (3,) outward unit normal
    rgb: tuple[int, int, int]  # shaded colour


@dataclass(frozen=True)
class Projection:
    """Where one object landed in the image."""

    index: int
    depth_m: float  # distance from the camera to the object's centre
    polygons: tuple[NDArray[np.int32], ...]  # fixed-point (1/16 px) polygons as drawn
    full_box: Box | None  # box of the whole silhouette (ignoring occlusion), clipped to the image


@dataclass(frozen=True)
class Rendered:
    """One rendered view."""

    image: NDArray[np.uint8]  # (H, W, 3) RGB
    labels: NDArray[np.uint8]  # (H, W) object index, 0 = background
    projections: tuple[Projection, ...]  # drawn objects, far to near


def _shade(
    albedo: tuple[int, int, int], normal: NDArray[np.float64], scene: Scene
) -> tuple[int, int, int]:
    light = scene.lighting
    lambert = max(0.0, float(np.dot(normal, light.direction)))
    gain = light.ambient + light.diffuse * lambert
    r, g, b = (min(255, round(c * gain)) for c in albedo)
    return (r, g, b)


def _faces(obj: SceneObject, scene: Scene) -> list[_Face]:
    """Faces of a cube, cylinder or cone in the world frame (balls are drawn analytically)."""
    centre = np.array([obj.x_m, obj.y_m, 0.0])
    faces: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
    if obj.shape is Shape.CUBE:
        half = obj.size_m / 2
        c, s = math.cos(obj.yaw_rad), math.sin(obj.yaw_rad)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        for axis in range(3):
            for sign in (-1.0, 1.0):
                normal = np.zeros(3)
                normal[axis] = sign
                u, w = np.eye(3)[(axis + 1) % 3], np.eye(3)[(axis + 2) % 3]
                corners = [normal * half + (a * u + b * w) * half
                           for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]  # fmt: skip
                verts = np.array(corners) @ rot.T + centre + [0, 0, half]
                faces.append((verts, rot @ normal))
    else:
        radius, height = obj.size_m / 2, obj.height_m
        angles = np.linspace(0, 2 * np.pi, SIDES, endpoint=False)
        ring = np.stack([np.cos(angles), np.sin(angles), np.zeros(SIDES)], axis=1)
        base = centre + radius * ring
        for i in range(SIDES):
            j = (i + 1) % SIDES
            mid = (angles[i] + angles[j] + (2 * np.pi if j == 0 else 0)) / 2
            if obj.shape is Shape.CYLINDER:
                up = np.array([0.0, 0.0, height])
                verts = np.array([base[i], base[j], base[j] + up, base[i] + up])
                normal = np.array([math.cos(mid), math.sin(mid), 0.0])
            else:
                apex = centre + np.array([0.0, 0.0, height])
                verts = np.array([base[i], base[j], apex])
                slope = radius / math.hypot(radius, height)
                rise = height / math.hypot(radius, height)
                normal = np.array([rise * math.cos(mid), rise * math.sin(mid), slope])
            faces.append((verts, normal))
        if obj.shape is Shape.CYLINDER:
            faces.append((base + np.array([0.0, 0.0, height]), np.array([0.0, 0.0, 1.0])))
    return [_Face(v, n, _shade(obj.colour.value, n, scene)) for v, n in faces]


def _clip_near(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Clip a convex polygon (K, 3) in camera coordinates to z >= NEAR_M (Sutherland-Hodgman)."""
    out: list[NDArray[np.float64]] = []
    count = len(points)
    for i in range(count):
        a, b = points[i], points[(i + 1) % count]
        a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (NEAR_M - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)


class Renderer:
    """Draws one scene for one camera; construct once per episode, call ``render`` per frame."""

    def __init__(self, camera: CameraModel, scene: Scene) -> None:
        self.camera = camera
        self.scene = scene
        self._faces = {
            o.index: _faces(o, scene) for o in scene.objects if o.shape is not Shape.BALL
        }
        self._background = self._make_background()
        span = np.arange(-GRID_EXTENT_M, GRID_EXTENT_M + 1e-9, GRID_STEP_M)
        lines = [((x, -GRID_EXTENT_M), (x, GRID_EXTENT_M)) for x in span]
        lines += [((-GRID_EXTENT_M, y), (GRID_EXTENT_M, y)) for y in span]
        self._grid = np.array([[[a[0], a[1], 0.0], [b[0], b[1], 0.0]] for a, b in lines])
        ground = np.array(scene.lighting.ground_rgb, dtype=np.float64)
        self._grid_rgb = tuple(int(c * 0.8) for c in ground)

    def _make_background(self) -> NDArray[np.uint8]:
        h, w = self.camera.height, self.camera.width
        light = self.scene.lighting
        horizon = math.ceil(self.camera.cy)
        image = np.empty((h, w, 3), dtype=np.uint8)
        sky_rows = np.linspace(0.85, 1.0, max(horizon, 1))[:, None]
        image[:horizon] = (sky_rows * np.array(light.sky_rgb))[:, None, :].astype(np.uint8)
        ground_rows = np.linspace(0.8, 1.05, max(h - horizon, 1))[:, None]
        ground = np.clip(ground_rows * np.array(light.ground_rgb), 0, 255)
        image[horizon:] = ground[:, None, :].astype(np.uint8)
        return image

    def _to_camera(
        self, pose: tuple[float, float, float, float], points: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """World (..., 3) -> camera optical frame (x right, y down, z forward)."""
        x, y, z, yaw = pose
        c, s = math.cos(yaw), math.sin(yaw)
        rows = np.array([[s, -c, 0.0], [0.0, 0.0, -1.0], [c, s, 0.0]])  # right, down, forward
        out: NDArray[np.float64] = (points - np.array([x, y, z])) @ rows.T
        return out

    def _project(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        cam = self.camera
        u = cam.fx * points[:, 0] / points[:, 2] + cam.cx
        v = cam.fy * points[:, 1] / points[:, 2] + cam.cy
        return np.stack([u, v], axis=1)

    def render(self, pose: tuple[float, float, float, float], only: int | None = None) -> Rendered:
        """Draw the scene from ``pose`` = (x, y, z, yaw); ``only`` draws one object, no ground."""
        cam = self.camera
        image = self._background.copy()
        labels = np.zeros((cam.height, cam.width), dtype=np.uint8)
        if only is None:
            self._draw_grid(image, pose)
        eye = np.array(pose[:3])
        objects = sorted(
            (o for o in self.scene.objects if only in (None, o.index)),
            key=lambda o: -math.hypot(o.x_m - pose[0], o.y_m - pose[1]),
        )
        projections = []
        for obj in objects:
            centre = np.array([obj.x_m, obj.y_m, obj.height_m / 2])
            if obj.shape is Shape.BALL:
                drawn = self._draw_ball(image, labels, pose, obj)
            else:
                drawn = self._draw_mesh(image, labels, pose, obj, eye)
            if drawn:
                projections.append(
                    Projection(
                        obj.index,
                        float(np.linalg.norm(centre - eye)),
                        tuple(drawn),
                        self._box(drawn),
                    )
                )
        return Rendered(image, labels, tuple(projections))

    def _draw_grid(self, image: NDArray[np.uint8], pose: tuple[float, float, float, float]) -> None:
        cam_pts = self._to_camera(pose, self._grid.reshape(-1, 3)).reshape(-1, 2, 3)
        for ends in cam_pts:
            a, b = ends
            if a[2] < NEAR_M and b[2] < NEAR_M:
                continue
            if a[2] < NEAR_M:
                a = a + (NEAR_M - a[2]) / (b[2] - a[2]) * (b - a)
            elif b[2] < NEAR_M:
                b = b + (NEAR_M - b[2]) / (a[2] - b[2]) * (a - b)
            seg = np.array([a, b])
            p = np.round(self._project(seg) * (1 << SHIFT)).astype(np.int64)
            # keep the far end finite: points near the horizon project to huge coordinates
            p = np.clip(p, -(1 << 24), 1 << 24).astype(np.int32)
            cv2.line(image, tuple(p[0]), tuple(p[1]), self._grid_rgb, 1, cv2.LINE_8, SHIFT)

    def _fill(
        self,
        image: NDArray[np.uint8],
        labels: NDArray[np.uint8],
        polygon: NDArray[np.int32],
        rgb: tuple[int, int, int],
        index: int,
    ) -> None:
        cv2.fillConvexPoly(image, polygon, rgb, cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(labels, polygon, index, cv2.LINE_8, SHIFT)

    def _fixed(self, points_cam: NDArray[np.float64]) -> NDArray[np.int32]:
        uv = self._project(points_cam) * (1 << SHIFT)
        return np.clip(np.round(uv), -(1 << 24), 1 << 24).astype(np.int32)

    def _draw_mesh(
        self,
        image: NDArray[np.uint8],
        labels: NDArray[np.uint8],
        pose: tuple[float, float, float, float],
        obj: SceneObject,
        eye: NDArray[np.float64],
    ) -> list[NDArray[np.int32]]:
        drawn = []
        for face in self._faces[obj.index]:
            if float(np.dot(face.normal, face.vertices[0] - eye)) >= 0:
                continue  # facing away
            cam_pts = self._to_camera(pose, face.vertices)
            if (cam_pts[:, 2] < NEAR_M).any():
                cam_pts = _clip_near(cam_pts)
                if len(cam_pts) < 3:  # noqa: PLR2004 - a polygon
                    continue
            polygon = self._fixed(cam_pts)
            self._fill(image, labels, polygon, face.rgb, obj.index)
            drawn.append(polygon)
        return drawn

    def _draw_ball(
        self,
        image: NDArray[np.uint8],
        labels: NDArray[np.uint8],
        pose: tuple[float, float, float, float],
        obj: SceneObject,
    ) -> list[NDArray[np.int32]]:
        radius = obj.size_m / 2
        centre = self._to_camera(pose, np.array([[obj.x_m, obj.y_m, radius]]))[0]
        distance = float(np.linalg.norm(centre))
        if centre[2] - radius < NEAR_M or distance <= radius * 1.01:
            return []  # touching the camera: not drawn
        # the silhouette is the circle where rays from the eye graze the sphere
        axis = centre / distance
        ring_centre = centre * (1 - radius**2 / distance**2)
        ring_radius = radius * math.sqrt(1 - radius**2 / distance**2)
        helper = np.array([0.0, 1.0, 0.0]) if abs(axis[1]) < 0.9 else np.array([1.0, 0.0, 0.0])  # noqa: PLR2004
        e1 = np.cross(axis, helper)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(axis, e1)
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        ring = ring_centre + ring_radius * (
            np.outer(np.cos(angles), e1) + np.outer(np.sin(angles), e2)
        )
        outline = self._fixed(ring)
        light_world = np.array(self.scene.lighting.direction)
        light_cam = self._to_camera((0.0, 0.0, 0.0, pose[3]), light_world[None, :])[0]
        toward = light_cam - axis  # half-way between the light and the viewer
        toward /= max(float(np.linalg.norm(toward)), 1e-9)
        spot = self._fixed((centre + radius * 0.6 * toward)[None, :])[0].astype(np.float64)
        albedo = np.array(obj.colour.value, dtype=np.float64)
        gain0 = self.scene.lighting.ambient + self.scene.lighting.diffuse
        for scale, brightness in BALL_LAYERS:
            layer = np.round(spot + (outline - spot) * scale).astype(np.int32)
            r, g, b = np.clip(albedo * gain0 * brightness, 0, 255).astype(int)
            cv2.fillConvexPoly(image, layer, (int(r), int(g), int(b)), cv2.LINE_8, SHIFT)
        cv2.fillConvexPoly(labels, outline, obj.index, cv2.LINE_8, SHIFT)
        return [outline]

    def _box(self, polygons: list[NDArray[np.int32]]) -> Box | None:
        points = np.concatenate(polygons).astype(np.float64) / (1 << SHIFT)
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        w, h = self.camera.width, self.camera.height
        x0, y0 = max(float(x0), -0.5), max(float(y0), -0.5)
        x1, y1 = min(float(x1), w - 0.5), min(float(y1), h - 0.5)
        if x1 <= x0 or y1 <= y0:
            return None
        return (x0, y0, x1, y1)


def mask_box(mask: NDArray[np.bool_]) -> Box | None:
    """Return the box of the True pixels of (H, W) ``mask``, or None when there are none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (cols[0] - 0.5, rows[0] - 0.5, cols[-1] + 0.5, rows[-1] + 0.5)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0

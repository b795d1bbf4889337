"""SyntheticScenes: a built-in scene-parsing dataset in which global context decides the class.

Each image is a procedurally drawn outdoor scene of one of three *types*:

    harbour  ground = water      vehicles are BOATS      skyline: open sea
    street   ground = road       vehicles are CARS       skyline: buildings
    field    ground = grass      vehicles are TRACTORS   skyline: trees

Classes (index, name, what it looks like):

    0 sky       blue gradient above the horizon          5 tree      dark-green round canopies
    1 water     } near the camera the three grounds      6 boat      } one and the same vehicle
    2 road      } share ONE plain texture; only a band   7 car       } drawing: shape, colours and
    3 grass     } near the horizon shows their own       8 tractor   } texture are identical
    4 building  grey-brown blocks with windows           9 person    a figure, 18-40% of the height

The point (PSPNet's paper, Fig. 2 "mismatched relationship"): boat, car and tractor look exactly
alike, and so do water, road and grass in the foreground. What tells them apart is *far away*: a
thin band of ground just below the horizon where each ground shows its pattern (waves, lane
markings, grass streaks), and the skyline above it. A big vehicle, or the bottom of the image, is
most of the image height away from that band. So a network whose prediction at a pixel depends on
a limited window (an FCN: its effective receptive field is much smaller than the image at 129 x 129)
must guess among three classes there; one that pools over the whole image (the pyramid pooling
module) reads the scene and applies it everywhere. The layout is drawn in relative coordinates, so
the cue's distance grows with `size`: the gap shows when the image is large compared with the
network's effective receptive field (see docs/synthetic_scenes.md for the measured FCN vs PPM).

Samples are a pure function of (seed, split, index): `SyntheticScenes(count=100)[7]` is the same
picture on every machine, at any `size`. They are drawn on the fly, a few milliseconds each at
65 x 65. Images are H x W x 3 float32 RGB in 0..255; labels H x W int64 in 0..9 (there are no
ignored pixels until a transform pads).
"""

from __future__ import annotations

import numbers

import numpy as np

from minipsp.data.dataset import Dataset

CLASSES = ("sky", "water", "road", "grass", "building", "tree", "boat", "car", "tractor", "person")
SKY, WATER, ROAD, GRASS, BUILDING, TREE, BOAT, CAR, TRACTOR, PERSON = range(len(CLASSES))
PALETTE = np.array([
    [135, 185, 240],   # sky
    [20, 70, 170],     # water
    [90, 90, 90],      # road
    [70, 170, 60],     # grass
    [170, 120, 90],    # building
    [20, 90, 30],      # tree
    [240, 200, 0],     # boat
    [220, 30, 30],     # car
    [250, 120, 0],     # tractor
    [230, 60, 230],    # person
], dtype=np.uint8)
IGNORE_COLOR = (0, 0, 0)

# scene type -> (its ground, its vehicle class)
SCENES = {"harbour": (WATER, BOAT), "street": (ROAD, CAR), "field": (GRASS, TRACTOR)}
FAR_BAND = 0.12  # height (fraction of the image) of the band below the horizon where grounds differ
SPLITS = {"train": 0, "val": 1, "test": 2}
VEHICLE_COLORS = np.array([[200, 40, 40], [230, 200, 40], [235, 235, 235], [230, 120, 30], [150, 50, 160]])
CLOTHES_COLORS = np.array([[30, 30, 110], [25, 25, 25], [110, 25, 110]])


def colorize(label: np.ndarray) -> np.ndarray:
    """label (H, W) class indices -> (H, W, 3) uint8 RGB with PALETTE; ignored pixels (255) black."""
    label = np.asarray(label)
    out = np.zeros(label.shape + (3,), np.uint8)
    out[:] = IGNORE_COLOR
    known = (label >= 0) & (label < len(CLASSES))
    out[known] = PALETTE[label[known]]
    return out


class SyntheticScenes(Dataset):
    """SyntheticScenes(split="train", count=1000, size=65, seed=0, transform=None).

    `size` is an int (square) or (height, width). Splits draw from different random streams.
    """

    classes = CLASSES
    palette = PALETTE
    num_classes = len(CLASSES)

    def __init__(self, split="train", count=1000, size=65, seed=0, transform=None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}; got {split!r}")
        if not isinstance(count, numbers.Integral) or count < 1:
            raise ValueError(f"count must be an int >= 1; got {count!r}")
        if isinstance(size, numbers.Integral):
            size = (size, size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"size must be an int or (height, width), at least 8 pixels; got {size!r}")
        self.split, self.count, self.size, self.seed = split, int(count), (int(size[0]), int(size[1])), int(seed)
        self.transform = transform

    def __len__(self):
        return self.count

    def scene_type(self, index: int) -> str:
        """Which scene (harbour, street, field) sample `index` shows."""
        return self._layout(index)[0]

    def _layout(self, index):
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        return list(SCENES)[rng.integers(3)], rng

    def load(self, index):
        scene, rng = self._layout(index)
        # the pixel grain has its own stream, so the layout drawn from `rng` is the same at any size
        grain_rng = np.random.default_rng([self.seed, SPLITS[self.split], index, 1])
        return draw_scene(scene, rng, *self.size, grain_rng=grain_rng)

    def __repr__(self):
        return f"SyntheticScenes(split={self.split!r}, count={self.count}, size={self.size}, seed={self.seed})"


# -- drawing ----------------------------------------------------------------------------------
class Canvas:
    """An image and its label, painted together: `paint(mask, class, colour)` sets both."""

    def __init__(self, rng, height, width, grain_rng=None):
        self.rng = rng
        self.y = ((np.arange(height) + 0.5) / height)[:, None]   # (H, 1) in 0..1, top to bottom
        self.x = ((np.arange(width) + 0.5) / width)[None, :]     # (1, W) in 0..1, left to right
        self.image = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.int64)
        self.pixel = 1.0 / height
        # one field of standard-normal grain per image, scaled per region: much cheaper than fresh
        # noise for every shape, and still a different texture for every sample
        grain_rng = rng if grain_rng is None else grain_rng
        self.grain = grain_rng.standard_normal((height, width, 3), dtype=np.float32)

    def paint(self, mask, cls, color, noise=6.0):
        mask = np.broadcast_to(mask, self.label.shape)
        color = np.asarray(color, np.float32)
        if color.ndim == 3:  # a colour per pixel (a gradient, waves): keep the painted pixels'
            color = np.broadcast_to(color, self.image.shape)[mask]
        self.image[mask] = color + noise * self.grain[mask]
        self.label[mask] = cls

    def rect(self, x0, x1, y0, y1):
        return (self.x >= x0) & (self.x < x1) & (self.y >= y0) & (self.y < y1)

    def ellipse(self, cx, cy, rx, ry):
        return ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 <= 1.0


def draw_scene(scene, rng, height, width, grain_rng=None):
    """Paint one scene; returns (image (H, W, 3) float32 in 0..255, label (H, W) int64)."""
    ground, vehicle_class = SCENES[scene]
    c = Canvas(rng, height, width, grain_rng)
    horizon = rng.uniform(0.2, 0.32)
    far = horizon + FAR_BAND
    c.paint(c.y < horizon, SKY, np.array([110, 160, 230]) + (c.y / horizon)[..., None] * np.array([80, 55, 15]),
            noise=4)
    draw_far_ground(c, (c.y >= horizon) & (c.y < far), ground, horizon)
    draw_near_ground(c, c.y >= far, ground)
    draw_skyline(c, scene, horizon)

    # vehicles stand on the near ground, so the band that names them is always at least FAR_BAND away;
    # the first is large (45-95% of the width), so its middle is far from any ground at all
    vehicles = []
    for i in range(rng.integers(1, 3)):
        w = rng.uniform(0.45, 0.95) if i == 0 else rng.uniform(0.25, 0.5)
        h = min(w * rng.uniform(0.45, 0.65), 0.8 * (1 - far))
        vehicles.append((rng.uniform(far + h, 1.05), rng.uniform(-0.1 * w, 1 - 0.9 * w), w, h))
    for bottom, x0, w, h in sorted(vehicles):  # far (higher up) first, so near ones occlude them
        draw_vehicle(c, vehicle_class, x0, bottom, w, h)
    for _ in range(rng.integers(0, 4)):
        hp = rng.uniform(0.18, 0.4)
        draw_person(c, rng.uniform(0.05, 0.95), rng.uniform(far + 0.5 * hp, 1.0), hp)
    return np.clip(c.image, 0, 255), c.label


def draw_far_ground(c, mask, ground, horizon):
    """The band just below the horizon, where each ground shows its own pattern."""
    rng = c.rng
    if ground == WATER:
        phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(60, 90)
        waves = 25 * np.sin(freq * c.y + 0.8 * np.sin(12 * c.x + phase))
        c.paint(mask, WATER, np.array([30, 90, 165]) + waves[..., None] * np.array([0.6, 0.8, 1.0]), noise=5)
    elif ground == ROAD:
        c.paint(mask, ROAD, np.full(3, rng.uniform(75, 100)), noise=9)
        lane_y = horizon + 0.5 * FAR_BAND
        dashes = (np.mod(c.x * 8 + rng.random(), 1.0) < 0.5) & (np.abs(c.y - lane_y) < max(0.015, c.pixel))
        c.paint(mask & dashes, ROAD, [225, 225, 215], noise=5)
    else:
        streaks = 20 * np.sin(90 * c.x + 3 * np.sin(40 * c.y))
        c.paint(mask, GRASS, np.array([60, 140, 50]) + streaks[..., None] * np.array([0.3, 1.0, 0.3]), noise=12)


def draw_near_ground(c, mask, ground):
    """Near the camera every ground is the same plain surface with soft blotches (as at dusk, or under
    a flat grey light): this is the part of water, road and grass that only the scene can name."""
    rng = c.rng
    phase = rng.uniform(0, 2 * np.pi, 2)
    blotches = 12 * np.sin(9 * c.x + phase[0]) * np.sin(7 * c.y + phase[1])
    c.paint(mask, ground, np.array([105, 110, 100]) * rng.uniform(0.85, 1.15) + blotches[..., None], noise=9)


def draw_skyline(c, scene, horizon):
    """What stands on the horizon: buildings behind a street, trees behind a field, open sea behind a harbour."""
    rng = c.rng
    for _ in range(rng.integers(3, 9) if scene == "field" else 0):
        r = rng.uniform(0.04, 0.1)
        canopy = c.ellipse(rng.uniform(0, 1), horizon - 0.6 * r, r * rng.uniform(0.8, 1.3), r) & (c.y < horizon)
        c.paint(canopy, TREE, np.array([30, 95, 35]) * rng.uniform(0.8, 1.2), noise=10)
    for _ in range(rng.integers(3, 7) if scene == "street" else 0):
        w, h = rng.uniform(0.08, 0.25), rng.uniform(0.06, 0.18)
        x0 = rng.uniform(-0.05, 1 - w)
        block = c.rect(x0, x0 + w, horizon - h, horizon + 0.005)
        base = np.array([150, 135, 120]) * rng.uniform(0.7, 1.15)
        windows = (np.mod((c.x - x0) * 40, 1.0) < 0.45) & (np.mod((c.y - horizon) * 40, 1.0) < 0.45)
        c.paint(block, BUILDING, np.where(windows[..., None], base * 0.55, base), noise=6)


def draw_vehicle(c, cls, x0, bottom, w, h):
    """The one vehicle drawing shared by boats, cars and tractors: a hull, a stripe, a cabin, windows."""
    rng = c.rng
    color = VEHICLE_COLORS[rng.integers(len(VEHICLE_COLORS))] * rng.uniform(0.85, 1.1)
    body = c.rect(x0, x0 + w, bottom - 0.6 * h, bottom)
    cabin = c.rect(x0 + 0.2 * w, x0 + 0.75 * w, bottom - h, bottom - 0.6 * h)
    c.paint(body | cabin, cls, color, noise=8)
    stripe = c.rect(x0, x0 + w, bottom - 0.38 * h, bottom - 0.28 * h)
    c.paint(stripe, cls, color * 0.45, noise=6)
    for wx in (0.25, 0.5):
        window = c.rect(x0 + wx * w, x0 + (wx + 0.2) * w, bottom - 0.9 * h, bottom - 0.68 * h)
        c.paint(window, cls, [170, 200, 220], noise=8)


def draw_person(c, cx, bottom, hp):
    rng = c.rng
    body = c.rect(cx - 0.2 * hp, cx + 0.2 * hp, bottom - 0.75 * hp, bottom)
    c.paint(body, PERSON, CLOTHES_COLORS[rng.integers(len(CLOTHES_COLORS))], noise=8)
    head = c.ellipse(cx, bottom - 0.86 * hp, 0.14 * hp * c.y.size / c.x.size, 0.14 * hp)
    c.paint(head, PERSON, [230, 190, 160], noise=8)

"""SyntheticScenes: a built-in scene-parsing dataset in which global context decides the class.

Each image is a procedurally drawn outdoor scene of one of three *types*, each with its own ground:

    harbour  ground = water      vehicles are BOATS      horizon: open sea, sometimes a harbour town
    street   ground = road       vehicles are CARS       horizon: buildings, sometimes trees
    field    ground = grass      vehicles are TRACTORS   horizon: trees, sometimes a farmhouse

Classes (index, name, what it looks like):

    0 sky       blue gradient above the horizon          5 tree      dark-green round canopies
    1 water     blue with horizontal waves               6 boat      } one and the same vehicle
    2 road      dark grey, dashed lane markings          7 car       } drawing: shape, colours and
    3 grass     green, streaky                           8 tractor   } texture are identical
    4 building  grey-brown blocks with windows           9 person    small figure, any scene

The point (PSPNet's paper, Fig. 2 "mismatched relationship"): boat, car and tractor look exactly
alike. Only the scene says which one a vehicle is, and the scene is *global*:

  * vehicles come at very different scales, up to 95% of the image width (half of the scenes have
    one wider than 55%), so the middle of a big one is far from any ground;
  * a small vehicle is often parked on a patch of another ground (a car on a grass verge, a tractor
    on a farm track, a boat on a slipway), so even the ground right next to it can mislead; the
    class follows the scene's main ground and horizon, never the local patch.

So a network that sees only a local window labels the vehicle's texture, and must guess; one that
pools over the whole image (the pyramid pooling module) can read the scene first. Persons are tiny
(5-16% of the height) and test small objects; sky and the grounds are "stuff".

Samples are a pure function of (seed, split, index): `SyntheticScenes(count=100)[7]` is the same
picture on every machine, at any `size` (the layout is drawn in relative coordinates). They are drawn
on the fly, a few milliseconds each at 65 x 65. Images are H x W x 3 float32 RGB in 0..255; labels
H x W int64 in 0..9 (there are no ignored pixels until a transform pads).
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

# scene type -> (main ground, vehicle class, ground a distracting patch is made of)
SCENES = {"harbour": (WATER, BOAT, ROAD), "street": (ROAD, CAR, GRASS), "field": (GRASS, TRACTOR, ROAD)}
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
    ground, vehicle_class, patch_ground = SCENES[scene]
    c = Canvas(rng, height, width, grain_rng)
    horizon = rng.uniform(0.25, 0.5)
    sky = c.y < horizon
    c.paint(sky, SKY, np.array([110, 160, 230]) + (c.y / horizon)[..., None] * np.array([80, 55, 15]), noise=4)
    draw_ground(c, c.y >= horizon, ground, horizon)
    draw_horizon(c, scene, horizon)

    vehicles = []
    for i in range(rng.integers(1, 4)):
        big = i == 0 and rng.random() < 0.5
        w = rng.uniform(0.55, 0.95) if big else np.exp(rng.uniform(np.log(0.1), np.log(0.45)))
        h = min(w * rng.uniform(0.45, 0.7), 0.9 * (1 - horizon))
        bottom = rng.uniform(horizon + h * 0.8, 1.08)
        vehicles.append((bottom, rng.uniform(-0.1 * w, 1 - 0.9 * w), w, h))
    for bottom, x0, w, h in sorted(vehicles):  # far (higher up) first, so near ones occlude them
        if w < 0.5 and rng.random() < 0.35:  # parked on a misleading patch of another ground
            patch = c.ellipse(x0 + w / 2, bottom - 0.1 * h, 0.75 * w, 0.45 * h) & (c.y >= horizon)
            draw_ground(c, patch, patch_ground, horizon)
        draw_vehicle(c, vehicle_class, x0, bottom, w, h)

    for _ in range(rng.integers(0, 4)):
        hp = rng.uniform(0.05, 0.16)
        draw_person(c, rng.uniform(0.05, 0.95), rng.uniform(horizon + hp, 1.0), hp)
    return np.clip(c.image, 0, 255), c.label


def draw_ground(c, mask, ground, horizon):
    rng = c.rng
    if ground == WATER:
        phase, freq = rng.uniform(0, 2 * np.pi), rng.uniform(25, 40)
        waves = 25 * np.sin(freq * c.y + 0.8 * np.sin(12 * c.x + phase))
        color = np.array([30, 90, 165]) + waves[..., None] * np.array([0.6, 0.8, 1.0])
        c.paint(mask, WATER, color, noise=5)
    elif ground == ROAD:
        c.paint(mask, ROAD, np.full(3, rng.uniform(75, 100)), noise=9)
        lane_y = rng.uniform(horizon + 0.1, 0.95)
        dashes = (np.mod(c.x * 8 + rng.random(), 1.0) < 0.5) & (np.abs(c.y - lane_y) < max(0.012, c.pixel))
        c.paint(mask & dashes, ROAD, [225, 225, 215], noise=5)
    else:
        streaks = 20 * np.sin(90 * c.x + 3 * np.sin(40 * c.y))
        c.paint(mask, GRASS, np.array([60, 140, 50]) + streaks[..., None] * np.array([0.3, 1.0, 0.3]), noise=12)


def draw_horizon(c, scene, horizon):
    """Buildings and trees standing on the horizon; which ones, and how many, depends on the scene."""
    rng = c.rng
    n_buildings = {"street": rng.integers(3, 7), "harbour": rng.integers(2, 5) * (rng.random() < 0.4),
                   "field": int(rng.random() < 0.3)}[scene]
    n_trees = {"street": rng.integers(1, 3) * (rng.random() < 0.3), "harbour": 0,
               "field": rng.integers(3, 9)}[scene]
    for _ in range(n_trees):
        r = rng.uniform(0.04, 0.1)
        canopy = c.ellipse(rng.uniform(0, 1), horizon - 0.6 * r, r * rng.uniform(0.8, 1.3), r) & (c.y < horizon)
        c.paint(canopy, TREE, np.array([30, 95, 35]) * rng.uniform(0.8, 1.2), noise=10)
    for _ in range(n_buildings):
        w, h = rng.uniform(0.08, 0.25), rng.uniform(0.08, 0.3) * (0.5 if scene == "harbour" else 1.0)
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
    body = c.rect(cx - 0.17 * hp, cx + 0.17 * hp, bottom - 0.75 * hp, bottom)
    c.paint(body, PERSON, CLOTHES_COLORS[rng.integers(len(CLOTHES_COLORS))], noise=8)
    head = c.ellipse(cx, bottom - 0.86 * hp, 0.13 * hp * c.y.size / c.x.size, 0.13 * hp)
    c.paint(head, PERSON, [230, 190, 160], noise=8)

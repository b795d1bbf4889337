"""Transforms keep image and label aligned; the DataLoader batches, shuffles reproducibly and resumes."""

import numpy as np
import pytest
import torch
from PIL import Image

from minipsp.data import DataLoader, Dataset, collate
from minipsp.data import synthetic as S
from minipsp.data import transforms as T
from minipsp.data.readers import ADE20K, ADE20K_LABEL_MAP, Cityscapes, SemsegList, VOCSegmentation, read_label
from minipsp.data.synthetic import BOAT, CAR, CLASSES, PALETTE, TRACTOR, Canvas, SyntheticScenes, colorize, draw_vehicle

H, W = 40, 52


def pattern():
    """An image whose channels 0 and 1 hold each pixel's own row and column, and whose label has blocks.

    Bilinear resampling reproduces a linear function exactly, so after any geometric transform
    (round(ch0), round(ch1)) says which source pixel an output pixel came from: the label there
    must be the source label at that place.
    """
    rows, cols = np.mgrid[0:H, 0:W].astype(np.float32)
    label = np.zeros((H, W), np.int64)
    label[5:20, 8:30] = 1
    label[22:37, 30:47] = 2
    label[10:30, 40:44] = 3
    image = np.stack([rows, cols, 50.0 * label], axis=2).astype(np.float32)
    return image, label


def check_aligned(image_out, label_out, label_in, min_fraction):
    """Compare each valid output pixel's label with the source label at the coordinates it carries.

    Nearest-neighbour rounding may differ by a pixel on a class boundary (twice, when two resampling
    steps are chained, and one output pixel spans two source pixels at scale 0.5), so most pixels
    must match exactly and every pixel must match the source within 2 source pixels.
    """
    src_r, src_c = np.floor(image_out[..., 0] + 0.5).astype(int), np.floor(image_out[..., 1] + 0.5).astype(int)
    # pixels whose source is inside the image, away from the edge (where padding blends in), not ignored
    inside = (src_r >= 2) & (src_r < H - 2) & (src_c >= 2) & (src_c < W - 2) & (label_out != 255)
    assert inside.sum() > 0.2 * label_out.size
    r, c, got = src_r[inside], src_c[inside], label_out[inside]
    exact = got == label_in[r, c]
    assert exact.mean() >= min_fraction, f"only {exact.mean():.3f} of pixels aligned"
    near = np.zeros_like(exact)
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            near |= got == label_in[r + dr, c + dc]
    assert near.all(), f"{(~near).sum()} pixels have a label found nowhere near their source"


@pytest.mark.parametrize("seed", range(6))
def test_semseg_pipeline_keeps_image_and_label_aligned(seed):
    image, label = pattern()
    pipeline = T.Compose([T.RandScale((0.5, 2.0)), T.RandRotate((-10, 10), padding=(-100, -100, -100), p=1.0),
                          T.RandomHorizontalFlip(p=0.5), T.Crop((48, 48), crop_type="rand",
                                                                padding=(-100, -100, -100))])
    image_out, label_out = pipeline(image, label, rng=np.random.default_rng(seed))
    assert image_out.shape == (48, 48, 3) and label_out.shape == (48, 48)
    assert image_out.dtype == np.float32 and label_out.dtype == np.int64
    check_aligned(image_out, label_out, label, min_fraction=0.95)
    # far from any valid pixel, padding: the image holds the padding value, the label 255
    far = (image_out[..., 0] < -99.5) & (image_out[..., 1] < -99.5)
    assert np.all(label_out[far] == 255)


@pytest.mark.parametrize("transform", [T.RandScale((0.5, 2.0)), T.RandRotate((-10, 10), p=1.0),
                                       T.Crop(30, crop_type="rand"), T.RandomHorizontalFlip(p=1.0)])
def test_each_geometric_transform_is_aligned(transform):
    image, label = pattern()
    for seed in range(3):
        image_out, label_out = transform(image, label, rng=np.random.default_rng(seed))
        check_aligned(image_out, label_out, label, min_fraction=0.98)


def test_scale_by_two_repeats_each_label_pixel():
    image, label = pattern()
    image_out, label_out = T.RandScale((2.0, 2.0))(image, label)
    assert label_out.shape == (2 * H, 2 * W)
    np.testing.assert_array_equal(label_out, np.kron(label, np.ones((2, 2), np.int64)))
    np.testing.assert_allclose(image_out[10:20, 10:20, 1], (np.arange(10, 20) - 0.5) / 2 * np.ones((10, 1)),
                               atol=1e-4)  # column c of the output samples source column (c + 0.5) / 2 - 0.5


def test_rotate_90_is_counter_clockwise():
    image, label = pattern()
    image, label = image[:, :H], label[:, :H]  # square, so a quarter turn keeps the size
    image_out, label_out = T.RandRotate((90, 90), p=1.0)(image, label)
    np.testing.assert_array_equal(label_out, np.rot90(label))
    np.testing.assert_allclose(image_out, np.rot90(image), atol=1e-3)


def test_rotate_fills_corners_with_padding_and_ignore():
    image, label = pattern()
    image_out, label_out = T.RandRotate((10, 10), padding=(1, 2, 3), ignore_label=255, p=1.0)(image, label)
    assert label_out[0, 0] == 255 and label_out[-1, -1] == 255
    np.testing.assert_allclose(image_out[0, 0], [1, 2, 3])
    untouched = T.RandRotate((10, 10), p=0.0)(image, label)
    np.testing.assert_array_equal(untouched[1], label)


def test_flip_mirrors_both():
    image, label = pattern()
    image_out, label_out = T.RandomHorizontalFlip(p=1.0)(image, label)
    np.testing.assert_array_equal(label_out, label[:, ::-1])
    np.testing.assert_array_equal(image_out, image[:, ::-1])
    assert label_out[6, W - 1 - 8] == 1  # the block that started at column 8 now ends at W - 1 - 8


def test_center_crop_pads_with_mean_and_ignore():
    image, label = pattern()
    image_out, label_out = T.Crop((50, 60), crop_type="center", padding=T.IMAGENET_MEAN)(image, label)
    # H 40 -> 50: 5 rows above, 5 below; W 52 -> 60: 4 columns left, 4 right
    np.testing.assert_array_equal(label_out[5:45, 4:56], label)
    assert np.all(label_out[:5] == 255) and np.all(label_out[:, :4] == 255) and np.all(label_out[45:] == 255)
    np.testing.assert_allclose(image_out[0, 0], T.IMAGENET_MEAN, rtol=1e-6)
    np.testing.assert_array_equal(image_out[5:45, 4:56], image)
    small_image, small_label = T.Crop(20, crop_type="center")(image, label)
    np.testing.assert_array_equal(small_label, label[10:30, 16:36])


def test_random_crop_takes_a_window():
    image, label = pattern()
    image_out, label_out = T.Crop(16, crop_type="rand")(image, label, rng=np.random.default_rng(3))
    top, left = int(image_out[0, 0, 0]), int(image_out[0, 0, 1])
    np.testing.assert_array_equal(label_out, label[top:top + 16, left:left + 16])


def test_gaussian_blur_equals_opencv_definition():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (9, 11, 3)).astype(np.float32)
    label = rng.integers(0, 5, (9, 11))
    out, label_out = T.RandomGaussianBlur(radius=5, p=1.0)(image, label)
    np.testing.assert_array_equal(label_out, label)
    # cv2.GaussianBlur(image, (5, 5), 0): the binomial [1 4 6 4 1]/16 filter, BORDER_REFLECT_101
    k = torch.tensor([1.0, 4, 6, 4, 1], dtype=torch.float64) / 16
    x = torch.tensor(image, dtype=torch.float64).permute(2, 0, 1)[:, None]
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    expected = torch.nn.functional.conv2d(x, (k[:, None] * k[None, :])[None, None])[:, 0].permute(1, 2, 0)
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(T.gaussian_kernel1d(9).sum(), 1.0)


def test_resize_to_tensor_normalize():
    image, label = pattern()
    image_out, label_out = T.Resize((20, 26))(image, label)
    assert image_out.shape == (20, 26, 3) and label_out.shape == (20, 26)
    np.testing.assert_array_equal(label_out, label[1::2, 1::2])  # nearest: source (x + 0.5) * 2 -> odd
    chw, lab = T.ToTensor()(image, label)
    assert chw.shape == (3, H, W) and chw.dtype == np.float32 and lab.dtype == np.int64
    np.testing.assert_array_equal(chw[1], image[..., 1])
    normed, _ = T.Normalize()(chw, lab)
    np.testing.assert_allclose(normed[2], (image[..., 2] - 103.53) / 57.375, rtol=1e-5, atol=1e-5)


def test_transforms_reproducible_from_seed_and_rng():
    image, label = pattern()
    make = lambda: T.Compose([T.RandScale((0.5, 2.0)), T.RandRotate(), T.RandomGaussianBlur(),  # noqa: E731
                              T.RandomHorizontalFlip(), T.Crop(32, crop_type="rand")], seed=5)
    a, b = make(), make()
    for _ in range(3):
        (ia, la), (ib, lb) = a(image, label), b(image, label)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(la, lb)
    ra = a(image, label, rng=np.random.default_rng(1))
    rb = make()(image, label, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(ra[1], rb[1])


def test_transform_errors():
    image, label = pattern()
    with pytest.raises(ValueError, match="same H, W"):
        T.RandomHorizontalFlip()(image, label[:-1])
    with pytest.raises(ValueError, match="padding"):
        T.Crop(64, padding=None)(image, label)
    with pytest.raises(ValueError, match="crop_type"):
        T.Crop(10, crop_type="random")
    with pytest.raises(ValueError, match="ToTensor"):
        T.Normalize()(image, label)
    with pytest.raises(ValueError, match="scale"):
        T.RandScale((2.0, 0.5))
    with pytest.raises(ValueError, match="radius"):
        T.RandomGaussianBlur(radius=4)


# -- DataLoader ------------------------------------------------------------------------------
class Numbers(Dataset):
    """Sample i: a 3x4x4 image filled with i, a 4x4 label filled with i; optionally a random crop."""

    def __init__(self, n, transform=None):
        self.n, self.transform = n, transform

    def __len__(self):
        return self.n

    def load(self, index):
        image = np.full((6, 6, 3), index, np.float32)
        image[..., 0] += np.arange(6)[:, None]  # where a crop started shows in the image
        return image, np.full((6, 6), index, np.int64)


def test_loader_batches_and_len():
    data = Numbers(10, T.Compose([T.Crop(4), T.ToTensor()]))
    loader = DataLoader(data, batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 3, 4, 4), (4, 3, 4, 4), (2, 3, 4, 4)]
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([b[1][:, 0, 0] for b in batches]), np.arange(10))
    dropped = DataLoader(data, batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [b[1].shape[0] for b in dropped] == [4, 4]


def test_loader_shuffle_is_seeded():
    data = Numbers(9, T.ToTensor())
    first = lambda loader: np.concatenate([b[1][:, 0, 0] for b in loader])  # noqa: E731
    a, b, c = (DataLoader(data, 2, shuffle=True, seed=s) for s in (1, 1, 2))
    epoch_a, epoch_b, epoch_c = first(a), first(b), first(c)
    np.testing.assert_array_equal(epoch_a, epoch_b)
    assert sorted(epoch_a) == list(range(9)) and not np.array_equal(epoch_a, epoch_c)
    assert not np.array_equal(first(a), epoch_a)  # the next epoch has another order
    assert a.epoch == 2


def test_loader_resume_equals_uninterrupted():
    data = Numbers(11, T.Compose([T.Crop(4, crop_type="rand"), T.ToTensor()]))
    make = lambda: DataLoader(data, batch_size=3, shuffle=True, drop_last=True, seed=4)  # noqa: E731

    def take(loader, count):
        out = []
        while len(out) < count:
            for batch in loader:
                out.append(batch)
                if len(out) == count:
                    break
        return out

    straight = take(make(), 10)
    first = make()
    head = take(first, 4)  # stops mid-epoch (3 batches an epoch)
    saved = first.state_dict()
    assert saved == {"seed": 4, "epoch": 1, "position": 1}
    resumed = make()
    resumed.load_state_dict(saved)
    tail = take(resumed, 6)
    for (ia, la), (ib, lb) in zip(straight, head + tail):
        np.testing.assert_array_equal(ia, ib)  # the crops (image channel 0) too, not only the order
        np.testing.assert_array_equal(la, lb)


def test_loader_on_a_plain_list_and_errors():
    pairs = [(np.zeros((3, 2, 2)), np.zeros((2, 2))) for _ in range(3)]
    images, labels = next(iter(DataLoader(pairs, batch_size=3)))
    assert images.shape == (3, 3, 2, 2) and labels.dtype == np.int64
    with pytest.raises(ValueError, match="different sizes"):
        collate([(np.zeros((3, 2, 2)), np.zeros((2, 2))), (np.zeros((3, 4, 2)), np.zeros((4, 2)))])
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(pairs, batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        DataLoader([], batch_size=1)
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(pairs, batch_size=4, drop_last=True)
    with pytest.raises(IndexError, match="out of range"):
        Numbers(3)[3]


# -- SyntheticScenes -------------------------------------------------------------------------


def test_synthetic_is_deterministic_by_seed_split_and_index():
    a, b = SyntheticScenes(count=5, size=33, seed=3), SyntheticScenes(count=5, size=33, seed=3)
    for i in range(5):
        np.testing.assert_array_equal(a[i][0], b[i][0])
        np.testing.assert_array_equal(a[i][1], b[i][1])
    assert not np.array_equal(a[0][0], SyntheticScenes(count=5, size=33, seed=4)[0][0])
    assert not np.array_equal(a[0][0], SyntheticScenes("val", count=5, size=33, seed=3)[0][0])
    np.testing.assert_array_equal(a[4][1], SyntheticScenes(count=50, size=33, seed=3)[4][1])  # not count


def test_synthetic_sizes_and_types():
    image, label = SyntheticScenes(count=1, size=(24, 40))[0]
    assert image.shape == (24, 40, 3) and image.dtype == np.float32
    assert label.shape == (24, 40) and label.dtype == np.int64
    assert image.min() >= 0 and image.max() <= 255
    big = SyntheticScenes(count=1, size=130)[0][1]
    small = SyntheticScenes(count=1, size=65)[0][1]
    assert np.mean(big[::2, ::2] == small) > 0.9  # the same scene, drawn at another resolution
    assert len(SyntheticScenes(count=7)) == 7


def test_synthetic_context_decides_the_vehicle_and_ground_class():
    data = SyntheticScenes(count=60, size=65, seed=0)
    scenes = {"harbour": ({BOAT}, {S.WATER}, set()), "street": ({CAR}, {S.ROAD}, {S.BUILDING}),
              "field": ({TRACTOR}, {S.GRASS}, {S.TREE})}
    seen, large = np.zeros(len(CLASSES), bool), 0
    for i in range(len(data)):
        label = data[i][1]
        present = set(np.unique(label).tolist())
        assert present <= set(range(len(CLASSES)))
        seen[list(present)] = True
        vehicle, ground, skyline = scenes[data.scene_type(i)]
        assert present & {BOAT, CAR, TRACTOR} == vehicle  # one vehicle class, the scene's
        assert present & {S.WATER, S.ROAD, S.GRASS} == ground   # one ground, the scene's
        assert present & {S.BUILDING, S.TREE} == skyline
        large += np.mean(np.isin(label, list(vehicle))) > 0.2
    assert seen.all(), f"classes never drawn: {[c for c, s in zip(CLASSES, seen) if not s]}"
    assert large >= 10  # big vehicles, whose middle is far from any ground, are common
    assert set(data.scene_type(i) for i in range(len(data))) == set(scenes)


def test_synthetic_near_ground_looks_the_same_whatever_its_class():
    drawings = []
    for cls in (S.WATER, S.ROAD, S.GRASS):
        canvas = Canvas(np.random.default_rng(0), 32, 32)
        S.draw_near_ground(canvas, canvas.y >= 0.5, cls)
        drawings.append(canvas)
    for canvas, cls in zip(drawings[1:], (S.ROAD, S.GRASS)):
        np.testing.assert_array_equal(canvas.image, drawings[0].image)
        np.testing.assert_array_equal(canvas.label == cls, drawings[0].label == S.WATER)
    assert (drawings[0].label[16:] == S.WATER).all() and (drawings[0].label[:16] == 0).all()


def test_synthetic_grounds_differ_only_in_the_band_below_the_horizon():
    # pixels of each ground class, split by distance below the horizon: far from it the three look
    # alike (the same mean colour), in the band just below it they do not
    data = SyntheticScenes(count=30, size=65, seed=1)
    far_means, near_means = {}, {}
    for i in range(len(data)):
        image, label = data[i]
        ground = {"harbour": S.WATER, "street": S.ROAD, "field": S.GRASS}[data.scene_type(i)]
        rows = np.flatnonzero((label == ground).any(axis=1))
        band, near = rows[rows < rows[0] + 5], rows[rows >= rows[0] + 12]
        far_means.setdefault(ground, []).append(image[band][label[band] == ground].mean(0))
        near_means.setdefault(ground, []).append(image[near][label[near] == ground].mean(0))
    far = np.array([np.mean(far_means[g], 0) for g in (S.WATER, S.ROAD, S.GRASS)])
    near = np.array([np.mean(near_means[g], 0) for g in (S.WATER, S.ROAD, S.GRASS)])
    assert np.abs(near - near.mean(0)).max() < 15
    assert np.abs(far - far.mean(0)).max() > 40


def test_synthetic_vehicles_look_the_same_whatever_their_class():
    drawings = []
    for cls in (BOAT, CAR, TRACTOR):
        canvas = Canvas(np.random.default_rng(0), 32, 32)
        draw_vehicle(canvas, cls, 0.1, 0.9, 0.7, 0.5)
        drawings.append(canvas)
    for canvas, cls in zip(drawings[1:], (CAR, TRACTOR)):
        np.testing.assert_array_equal(canvas.image, drawings[0].image)
        np.testing.assert_array_equal(canvas.label == cls, drawings[0].label == BOAT)


def test_colorize_and_palette():
    label = np.array([[0, 9], [255, 3]])
    rgb = colorize(label)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[0, 1], PALETTE[9])
    np.testing.assert_array_equal(rgb[1, 0], [0, 0, 0])
    assert PALETTE.shape == (len(CLASSES), 3) and len({tuple(c) for c in PALETTE}) == len(CLASSES)


def test_synthetic_through_the_loader_with_transforms():
    tf = T.Compose([T.RandScale((0.5, 2.0)), T.RandRotate(), T.RandomGaussianBlur(), T.RandomHorizontalFlip(),
                    T.Crop(33, crop_type="rand"), T.ToTensor(), T.Normalize()])
    loader = DataLoader(SyntheticScenes(count=6, size=33, transform=tf), batch_size=3, shuffle=True)
    images, labels = next(iter(loader))
    assert images.shape == (3, 3, 33, 33) and labels.shape == (3, 33, 33)
    assert abs(images.mean()) < 2  # normalised


def test_synthetic_errors():
    with pytest.raises(ValueError, match="split"):
        SyntheticScenes(split="training")
    with pytest.raises(ValueError, match="count"):
        SyntheticScenes(count=0)
    with pytest.raises(ValueError, match="size"):
        SyntheticScenes(size=4)


# -- readers on tiny real folders ------------------------------------------------------------
COLOR = (200, 40, 90)


def write_image(path, size=(8, 6), color=COLOR):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def write_label(path, array, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(array, np.uint8))
    if palette:  # as VOC stores them: indices into a colour palette
        img = img.convert("P")
        img.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    img.save(path)


RAW = np.array([[0, 1, 2, 150, 150, 7, 7, 0]] * 6)  # 6 x 8


def test_ade20k_reader_maps_labels(tmp_path):
    ade = tmp_path / "ADEChallengeData2016"
    for name in ("ADE_train_00000001", "ADE_train_00000002"):
        write_image(ade / "images" / "training" / f"{name}.jpg")
        write_label(ade / "annotations" / "training" / f"{name}.png", RAW)
    for root in (tmp_path, ade):
        data = ADE20K(root, split="train")
        assert len(data) == 2
        image, label = data[1]
        assert image.shape == (6, 8, 3) and image.dtype == np.float32 and label.dtype == np.int64
        np.testing.assert_allclose(image[3, 4], COLOR, atol=6)  # JPEG is lossy
        np.testing.assert_array_equal(label[0], [255, 0, 1, 149, 149, 6, 6, 255])
    with pytest.raises(FileNotFoundError, match=r"(?s)images/validation.*expected layout"):
        ADE20K(tmp_path, split="val")
    with pytest.raises(ValueError, match="split"):
        ADE20K(tmp_path, split="validation")


def test_voc_reader_keeps_borders_and_reads_the_aug_list(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    raw = np.array([[0, 0, 15, 15, 255, 255, 20, 1]] * 6)
    for name in ("2007_000032", "2007_000039"):
        write_image(voc / "JPEGImages" / f"{name}.jpg")
        write_label(voc / "SegmentationClass" / f"{name}.png", raw, palette=True)
        write_label(voc / "SegmentationClassAug" / f"{name}.png", raw[:, ::-1])
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n2007_000039\n")
    data = VOCSegmentation(tmp_path, split="train")
    assert len(data) == 2
    assert Image.open(voc / "SegmentationClass" / "2007_000032.png").mode == "P"
    np.testing.assert_array_equal(data[0][1], raw)  # palette indices, not colours; 255 kept
    (voc / "ImageSets" / "SegmentationAug").mkdir(parents=True)
    (voc / "ImageSets" / "SegmentationAug" / "train_aug.txt").write_text(
        "/JPEGImages/2007_000039.jpg /SegmentationClassAug/2007_000039.png\n")
    aug = VOCSegmentation(voc, split="train", aug=True)
    assert len(aug) == 1
    np.testing.assert_array_equal(aug[0][1], raw[:, ::-1])
    with pytest.raises(FileNotFoundError, match=r"(?s)val.txt.*expected layout"):
        VOCSegmentation(tmp_path, split="val")


def test_cityscapes_reader_maps_label_ids_to_train_ids(tmp_path):
    raw = np.array([[7, 8, 26, 33, 0, 1, 255, 23]] * 6)
    for city, frame in (("aachen", "000000_000019"), ("bremen", "000001_000019")):
        write_image(tmp_path / "leftImg8bit" / "train" / city / f"{city}_{frame}_leftImg8bit.png")
        write_label(tmp_path / "gtFine" / "train" / city / f"{city}_{frame}_gtFine_labelIds.png", raw)
    data = Cityscapes(tmp_path, split="train")
    assert len(data) == 2
    image, label = data[1]
    np.testing.assert_array_equal(image[0, 0], COLOR)  # PNG is exact
    np.testing.assert_array_equal(label[0], [0, 1, 13, 18, 255, 255, 255, 10])
    (tmp_path / "gtFine" / "train" / "bremen" / "bremen_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(FileNotFoundError, match="bremen_000001_000019_gtFine_labelIds.png"):
        Cityscapes(tmp_path, split="train")


def test_semseg_list_reader(tmp_path):
    write_image(tmp_path / "images" / "a.jpg")
    write_label(tmp_path / "labels" / "a.png", RAW)
    write_image(tmp_path / "images" / "b.png")
    write_label(tmp_path / "labels" / "b.png", RAW[::-1])
    lists = tmp_path / "list.txt"
    lists.write_text("images/a.jpg labels/a.png\n\nimages/b.png labels/b.png\n")
    data = SemsegList(tmp_path, lists)
    assert len(data) == 2
    np.testing.assert_array_equal(data[0][1], RAW)  # labels as stored
    np.testing.assert_array_equal(SemsegList(tmp_path, lists, label_map=ADE20K_LABEL_MAP)[0][1][0, :3], [255, 0, 1])
    loader = DataLoader(SemsegList(tmp_path, lists, transform=T.Compose([T.Crop(4), T.ToTensor()])), batch_size=2)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 4, 4) and labels.shape == (2, 4, 4)

    (tmp_path / "bad.txt").write_text("images/a.jpg\n")
    with pytest.raises(ValueError, match="line 1"):
        SemsegList(tmp_path, tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        SemsegList(tmp_path, tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SemsegList(tmp_path / "nowhere", lists)
    (tmp_path / "gone.txt").write_text("images/gone.jpg labels/a.png\n")
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        SemsegList(tmp_path, tmp_path / "gone.txt")


def test_label_must_be_single_channel_and_same_size(tmp_path):
    write_image(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        read_label(tmp_path / "rgb.png")
    write_image(tmp_path / "img.png", size=(8, 6))
    write_label(tmp_path / "small.png", RAW[:3])
    (tmp_path / "l.txt").write_text("img.png small.png\n")
    with pytest.raises(ValueError, match="8x6 but its label"):
        SemsegList(tmp_path, tmp_path / "l.txt")[0]

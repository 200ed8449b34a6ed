"""Procedurally generated textured shapes on noisy backgrounds: the source task and a related target.

The offline stand-in for an ImageNet model is pretrained on the source classes. A class is a
(shape, texture) pair, so a network has to learn both outline and surface pattern; colours,
position, scale, rotation and background are random nuisances shared by every class. The novel
shapes and textures make target classes the source never saw, drawn from the same distribution.
"""
import numpy as np
import torch

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "cross", "ring")
TEXTURES: tuple[str, ...] = ("solid", "hstripes", "vstripes", "checker")
NOVEL_SHAPES: tuple[str, ...] = ("star", "hexagon", "half_disc", "crescent", "bar")
NOVEL_TEXTURES: tuple[str, ...] = ("dstripes", "dots")
ALL_SHAPES, ALL_TEXTURES = SHAPES + NOVEL_SHAPES, TEXTURES + NOVEL_TEXTURES
# The source task's classes, in label order: label = shape index * 4 + texture index.
SOURCE_CLASSES: tuple[tuple[str, str], ...] = tuple((shape, texture) for shape in SHAPES for texture in TEXTURES)
NUM_CLASSES = len(SOURCE_CLASSES)

MIN_SCALE, MAX_SCALE = 0.35, 0.80  # shape diameter as a fraction of the image side
MIN_BAND_WIDTH, MAX_BAND_WIDTH = 2, 5  # pixels per stripe / checker square
MIN_COLOUR_DISTANCE = 0.45  # Euclidean RGB distance between any two of background, fill A, fill B
MAX_GRADIENT = 0.2  # per-channel brightness change across the image
MIN_NOISE_STD, MAX_NOISE_STD = 0.02, 0.07
CHUNK_SIZE = 2048  # images rendered at once; bounds memory without changing the output

_RING_INNER_RADIUS = 0.55
_CROSS_HALF_WIDTH = 0.3
_SQUARE_HALF_SIDE = 0.8
_TRIANGLE_CIRCUMRADIUS = 1.15  # a triangle inscribed in the unit disc would look much smaller than the rest
_SQRT3 = np.sqrt(3.0)


def generate_shapes(num_images: int, seed: int, size: int = 32,
                    classes: tuple[tuple[str, str], ...] = SOURCE_CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """images float32 (N, 3, size, size) in [0, 1]; labels int64 (N,), label i = classes[i]."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % len(classes))
    params = _draw_image_params(rng, labels, size)
    params["shape"] = np.array([ALL_SHAPES.index(classes[label][0]) for label in labels], dtype=np.int64)
    params["texture"] = np.array([ALL_TEXTURES.index(classes[label][1]) for label in labels], dtype=np.int64)
    images = np.empty((num_images, 3, size, size), dtype=np.float32)
    for start in range(0, num_images, CHUNK_SIZE):
        chunk = slice(start, start + CHUNK_SIZE)
        images[chunk] = _render({name: value[chunk] for name, value in params.items()}, size, rng)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _draw_image_params(rng: np.random.Generator, labels: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Every per-image random choice, drawn up front so chunking cannot change the result."""
    n = len(labels)
    scale = rng.uniform(MIN_SCALE, MAX_SCALE, n)
    # Keep the centre far enough from the border that most of the shape stays visible.
    margin = 0.4 * scale
    centre_x = rng.uniform(margin, 1.0 - margin)
    centre_y = rng.uniform(margin, 1.0 - margin)
    background, fill_a, fill_b = _draw_distinct_colours(rng, n)
    gradient_angle = rng.uniform(0.0, 2.0 * np.pi, n)
    # At least two full pattern periods across the shape, or small shapes look solid.
    widest_band = np.clip(scale * size // 4, MIN_BAND_WIDTH, MAX_BAND_WIDTH).astype(np.int64)
    return {
        "radius": scale / 2.0,
        "centre_x": centre_x,
        "centre_y": centre_y,
        "rotation": rng.uniform(0.0, 2.0 * np.pi, n),
        "band_width": rng.integers(MIN_BAND_WIDTH, widest_band + 1),
        "phase_x": rng.integers(0, 2 * MAX_BAND_WIDTH, n),
        "phase_y": rng.integers(0, 2 * MAX_BAND_WIDTH, n),
        "background": background,
        "fill_a": fill_a,
        "fill_b": fill_b,
        "gradient_dx": np.cos(gradient_angle),
        "gradient_dy": np.sin(gradient_angle),
        "gradient_strength": rng.uniform(-MAX_GRADIENT, MAX_GRADIENT, (n, 3)),
        "noise_std": rng.uniform(MIN_NOISE_STD, MAX_NOISE_STD, n),
    }


def _draw_distinct_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Background and two fill colours per image, pairwise at least MIN_COLOUR_DISTANCE apart."""
    colours = rng.uniform(0.0, 1.0, (n, 3, 3))
    too_close = _colours_too_close(colours)
    while too_close.any():
        colours[too_close] = rng.uniform(0.0, 1.0, (int(too_close.sum()), 3, 3))
        too_close = _colours_too_close(colours)
    return colours[:, 0], colours[:, 1], colours[:, 2]


def _colours_too_close(colours: np.ndarray) -> np.ndarray:
    pairs = ((0, 1), (0, 2), (1, 2))
    distances = np.stack([np.linalg.norm(colours[:, i] - colours[:, j], axis=1) for i, j in pairs], axis=1)
    return (distances < MIN_COLOUR_DISTANCE).any(axis=1)


def _render(params: dict[str, np.ndarray], size: int, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.indices((size, size))
    shape_mask = _shape_masks(params, rows, cols, size)
    pattern = _texture_patterns(params, rows, cols)
    fill = np.where(pattern[:, None], params["fill_b"][:, :, None, None], params["fill_a"][:, :, None, None])
    image = np.where(shape_mask[:, None], fill, _backgrounds(params, rows, cols, size))
    noise = rng.standard_normal(image.shape) * params["noise_std"][:, None, None, None]
    return np.clip(image + noise, 0.0, 1.0).astype(np.float32)


def _backgrounds(params: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Base colour plus a linear gradient along a random direction, (n, 3, size, size)."""
    x = (cols + 0.5) / size - 0.5
    y = (rows + 0.5) / size - 0.5
    ramp = params["gradient_dx"][:, None, None] * x + params["gradient_dy"][:, None, None] * y
    return params["background"][:, :, None, None] + params["gradient_strength"][:, :, None, None] * ramp[:, None]


def _shape_masks(params: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Boolean (n, size, size): which pixels each image's shape covers."""
    dx = (cols + 0.5) / size - params["centre_x"][:, None, None]
    dy = (rows + 0.5) / size - params["centre_y"][:, None, None]
    cos = np.cos(params["rotation"])[:, None, None]
    sin = np.sin(params["rotation"])[:, None, None]
    radius = params["radius"][:, None, None]
    # Shape-local coordinates in which every shape spans about the unit disc.
    u = (cos * dx + sin * dy) / radius
    v = (cos * dy - sin * dx) / radius
    masks = np.zeros(u.shape, dtype=bool)
    for index, draw in enumerate(_SHAPE_MASKS):
        chosen = params["shape"] == index
        if chosen.any():
            masks[chosen] = draw(u[chosen], v[chosen])
    return masks


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u**2 + v**2 <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Equilateral triangle centred on the origin, apex pointing along +v."""
    return (v >= -0.5 * _TRIANGLE_CIRCUMRADIUS) & (v <= _TRIANGLE_CIRCUMRADIUS - _SQRT3 * np.abs(u))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    abs_u, abs_v = np.abs(u), np.abs(v)
    return (np.maximum(abs_u, abs_v) <= 1.0) & (np.minimum(abs_u, abs_v) <= _CROSS_HALF_WIDTH)


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    squared_radius = u**2 + v**2
    return (squared_radius <= 1.0) & (squared_radius >= _RING_INNER_RADIUS**2)


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Five-pointed: the radius swings between 0.45 and 1 with the angle."""
    return np.hypot(u, v) <= 0.725 + 0.275 * np.cos(5 * np.arctan2(v, u))


def _hexagon(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    abs_u, abs_v = np.abs(u), np.abs(v)
    return np.maximum(abs_v, (_SQRT3 * abs_u + abs_v) / 2) <= 0.87


def _half_disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u**2 + v**2 <= 1.0) & (v >= -0.1)


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u**2 + v**2 <= 1.0) & ((u - 0.45) ** 2 + v**2 > 0.75**2)


def _bar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.4)


_SHAPE_MASKS = (_disc, _square, _triangle, _cross, _ring, _star, _hexagon, _half_disc, _crescent, _bar)
assert len(_SHAPE_MASKS) == len(ALL_SHAPES)


def _texture_patterns(params: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Boolean (n, size, size): True where fill colour B replaces fill colour A.

    Patterns live in image coordinates, not shape coordinates, so horizontal stripes stay
    horizontal however the shape is rotated.
    """
    width = params["band_width"][:, None, None]
    row_band = (rows + params["phase_y"][:, None, None]) // width % 2 == 1
    col_band = (cols + params["phase_x"][:, None, None]) // width % 2 == 1
    diagonal = (rows + cols + params["phase_x"][:, None, None]) // width % 2 == 1
    patterns = np.stack([np.zeros_like(row_band), row_band, col_band, row_band ^ col_band, diagonal,
                         row_band & col_band])
    return np.take_along_axis(patterns, params["texture"][None, :, None, None], axis=0)[0]

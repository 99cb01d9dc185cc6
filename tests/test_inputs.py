"""Tests of multisparc.inputs: sparse token generation and batching on a hand-made scene.

The scene: a 64 x 48 camera looking at a fronto-parallel wall at z = 2 m (normal (0, 0, -1), facing the
camera), with an rgb pattern that differs in every pixel, and a unit cube of CAD points whose front face
touches the wall when the cube sits at t = (0, 0, 2.5).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multisparc.datasets.bundle import Camera, Detection, Observation
from multisparc.datasets.pixels import ImagePixelSource, PixelData
from multisparc.geometry import Pose
from multisparc.inputs import (
    BEARING,
    C_INPUT,
    DEPTH,
    DETECTION_ID,
    MASK,
    NORMAL,
    RGB,
    TOKEN_TYPE,
    TYPE_BOX,
    TYPE_CAD,
    TYPE_REPROJECTED,
    InputConfig,
    TokenBatch,
    chunk_indices,
    collate,
    collate_image,
    pose_tokens,
    sample_box_tokens,
    step_tokens,
    uncollate,
)

WIDTH, HEIGHT = 64, 48
FX, FY, CX, CY = 50.0, 40.0, 32.0, 24.0
K_CAM = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]])
WALL_DEPTH = 2.0
BOXES = np.array([[20.0, 10.0, 40.0, 30.0], [50.0, 30.0, 63.0, 47.0]])


def wall_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """rgb (H, W, 3) uint8 unique per pixel, depth (H, W), normals (H, W, 3), one mask (H, W) per box."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([cols * 4, rows * 5, (cols + rows) % 7 * 30], axis=-1).astype(np.uint8)
    depth = np.full((HEIGHT, WIDTH), WALL_DEPTH, dtype=np.float32)
    normals = np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32)
    normals[..., 2] = -1.0
    mask_a = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask_a[12:25, 22:33] = True
    mask_b = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask_b[35:47, 55:63] = True
    return rgb, depth, normals, [mask_a, mask_b]


class ArraySource:
    """A PixelSource over full arrays that counts calls and refuses pixels outside the image."""

    def __init__(self) -> None:
        self.rgb, self.depth, self.normals, self.masks = wall_arrays()
        self.K, self.width, self.height = K_CAM, WIDTH, HEIGHT
        self.calls: list[int] = []

    def sample(self, pixels: np.ndarray, detection_index: np.ndarray) -> PixelData:
        assert pixels.dtype.kind == "i" and pixels.shape == (len(detection_index), 2)
        cols, rows = pixels[:, 0], pixels[:, 1]
        assert (cols >= 0).all() and (cols < WIDTH).all() and (rows >= 0).all() and (rows < HEIGHT).all()
        self.calls.append(len(pixels))
        masks = np.stack(self.masks)
        return PixelData(
            rgb=self.rgb[rows, cols].astype(np.float32) / 255.0,
            depth=self.depth[rows, cols],
            normals=self.normals[rows, cols],
            mask=masks[detection_index, rows, cols].astype(np.float32),
        )


def cube_points(per_side: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(6 per_side^2, 3) points on the faces of the unit cube centred at the origin, and outward normals."""
    grid = (torch.arange(per_side, dtype=torch.float64) + 0.5) / per_side - 0.5
    a, b = torch.meshgrid(grid, grid, indexing="ij")
    a, b = a.flatten(), b.flatten()
    points, normals = [], []
    for axis in range(3):
        for sign in (-0.5, 0.5):
            face = torch.zeros(len(a), 3, dtype=torch.float64)
            others = [i for i in range(3) if i != axis]
            face[:, others[0]], face[:, others[1]], face[:, axis] = a, b, sign
            normal = torch.zeros_like(face)
            normal[:, axis] = 1.0 if sign > 0 else -1.0
            points.append(face)
            normals.append(normal)
    return torch.cat(points), torch.cat(normals)


def translated(t: list[list[list[float]]]) -> Pose:
    """Unrotated, unscaled poses with translations t (*H, K, 3)."""
    t = torch.tensor(t, dtype=torch.float64)
    return Pose(torch.eye(3, dtype=torch.float64).expand(*t.shape[:-1], 3, 3), t, torch.ones_like(t))


def pixels_of(tokens: torch.Tensor) -> torch.Tensor:
    """Integer (col, row) (..., 2) of observed tokens, recovered from their bearings."""
    bearing = tokens[..., BEARING].double()
    u = FX * bearing[..., 0] / bearing[..., 2] + CX
    v = FY * bearing[..., 1] / bearing[..., 2] + CY
    pixels = torch.stack([u, v], dim=-1)
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)
    return pixels.round().long()


def test_config_presets_and_round_trip():
    paper, cpu = InputConfig.paper(), InputConfig.cpu()
    assert (paper.n_bbox, paper.n_cad, paper.box_enlarge, paper.n_input) == (2000, 500, 0.1, 3000)
    assert (cpu.n_bbox, cpu.n_cad, cpu.n_input) == (500, 100, 700)
    assert InputConfig.from_dict(cpu.to_dict()) == cpu
    assert InputConfig.from_dict({"n_cad": 50}) == InputConfig(n_bbox=2000, n_cad=50)
    with pytest.raises(ValueError, match="unknown input config key"):
        InputConfig.from_dict({"n_box": 10})
    with pytest.raises(ValueError, match="n_cad must be a positive integer"):
        InputConfig(n_cad=0)


def test_known_pixel_has_known_values():
    source = ArraySource()
    config = InputConfig(n_bbox=8, n_cad=1, box_enlarge=0.0)
    # A box narrower than a pixel around (col 30, row 20): every draw is that pixel.
    tokens = sample_box_tokens(source, [[29.8, 19.7, 30.3, 20.2]], config, np.random.default_rng(0))
    assert tokens.shape == (1, 8, C_INPUT) and tokens.dtype == torch.float32
    ray = np.array([(30 - CX) / FX, (20 - CY) / FY, 1.0])
    expected = np.concatenate(
        [source.rgb[20, 30] / 255.0, [0.0, 0.0, -1.0], [WALL_DEPTH, 1.0], ray / np.linalg.norm(ray), [TYPE_BOX, 0]]
    )
    np.testing.assert_allclose(tokens[0].numpy(), np.tile(expected, (8, 1)), atol=1e-6)
    # Row 12 is inside mask 0, row 11 is not; the column 21 is outside it.
    assert sample_box_tokens(source, [[22, 12, 22.2, 12.2]], config, np.random.default_rng(0))[0, 0, MASK] == 1
    assert sample_box_tokens(source, [[22, 11, 22.2, 11.2]], config, np.random.default_rng(0))[0, 0, MASK] == 0
    assert sample_box_tokens(source, [[21, 12, 21.2, 12.2]], config, np.random.default_rng(0))[0, 0, MASK] == 0


def test_box_tokens_lie_in_enlarged_clipped_box():
    source = ArraySource()
    tokens = sample_box_tokens(source, BOXES, InputConfig(n_bbox=2000, n_cad=1), np.random.default_rng(1))
    assert source.calls == [2 * 2000]
    pixels = pixels_of(tokens)
    # Box 0 [20, 10, 40, 30] grows by 1 pixel a side; box 1 grows to [49.35, 29.15, 63.65, 47.85], clipped.
    for k, (col_lo, row_lo, col_hi, row_hi) in enumerate([(19, 9, 41, 31), (50, 30, 63, 47)]):
        cols, rows = pixels[k, :, 0], pixels[k, :, 1]
        assert (cols.min(), cols.max(), rows.min(), rows.max()) == (col_lo, col_hi, row_lo, row_hi)
        np.testing.assert_allclose(tokens[k, :, RGB].numpy(), source.rgb[rows, cols] / 255.0, atol=1e-6)
        np.testing.assert_array_equal(tokens[k, :, MASK].numpy(), source.masks[k][rows, cols])
        assert (tokens[k, :, TOKEN_TYPE] == TYPE_BOX).all() and (tokens[k, :, DETECTION_ID] == k).all()
    assert torch.allclose(tokens[..., DEPTH], torch.tensor(WALL_DEPTH))
    with pytest.raises(ValueError, match=r"detection 1: box .* outside the 64 x 48 image"):
        sample_box_tokens(source, [[1, 1, 5, 5], [70, 1, 80, 5]], InputConfig(), np.random.default_rng(0))


def test_box_tokens_with_a_generator_per_box_equal_each_box_sampled_alone():
    config = InputConfig(n_bbox=300, n_cad=1)
    source = ArraySource()
    together = sample_box_tokens(source, BOXES, config, [np.random.default_rng([7, k]) for k in range(2)])
    assert source.calls == [2 * 300]
    for k in range(2):
        alone = sample_box_tokens(_OneMask(source, k), BOXES[k : k + 1], config, np.random.default_rng([7, k]))
        # Only the detection_id channel differs: it is the box's position in the list handed in.
        assert (together[k, :, DETECTION_ID] == k).all()
        torch.testing.assert_close(together[k, :, :DETECTION_ID], alone[0, :, :DETECTION_ID], rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 generators for 2 boxes"):
        sample_box_tokens(source, BOXES, config, [np.random.default_rng(0)])


class _OneMask:
    """`source` holding only detection k, as its detection 0."""

    def __init__(self, source: ArraySource, k: int) -> None:
        self.source, self.k = source, k
        self.K, self.width, self.height = source.K, source.width, source.height

    def sample(self, pixels: np.ndarray, detection_index: np.ndarray) -> PixelData:
        return self.source.sample(pixels, detection_index + self.k)


def test_reprojected_points_on_the_wall_sample_their_own_depth():
    source = ArraySource()
    points, normals = cube_points()
    poses = translated([[[0.0, 0.0, 2.5]]])
    tokens, token_mask = pose_tokens(source, points[None], normals[None], poses)
    n_cad = len(points)
    assert tokens.shape == (1, 1, 2 * n_cad, C_INPUT) and token_mask.all()
    reprojected, cad = tokens[0, 0, :n_cad], tokens[0, 0, n_cad:]
    front = points[:, 2] == -0.5
    assert torch.allclose(cad[front, DEPTH], torch.tensor(WALL_DEPTH))
    assert torch.allclose(reprojected[front, DEPTH], cad[front, DEPTH])
    assert torch.allclose(reprojected[front, NORMAL], cad[front, NORMAL])
    # Observed values come from the pixel nearest to each projection, with that pixel's bearing.
    camera_points = points + torch.tensor([0.0, 0.0, 2.5], dtype=torch.float64)
    u = FX * camera_points[:, 0] / camera_points[:, 2] + CX
    v = FY * camera_points[:, 1] / camera_points[:, 2] + CY
    cols, rows = torch.floor(u + 0.5).long(), torch.floor(v + 0.5).long()
    assert torch.equal(pixels_of(reprojected), torch.stack([cols, rows], dim=-1))
    np.testing.assert_allclose(reprojected[:, RGB].numpy(), source.rgb[rows, cols] / 255.0, atol=1e-6)
    # CAD tokens: unit bearings along the point, outward normals (the back face points away: nz = +1).
    assert torch.allclose(cad[:, BEARING].norm(dim=-1), torch.tensor(1.0))
    expected_bearing = torch.nn.functional.normalize(camera_points, dim=-1).float()
    assert torch.allclose(cad[:, BEARING], expected_bearing, atol=1e-6)
    assert torch.allclose(cad[:, DEPTH], camera_points[:, 2].float())
    assert torch.equal(cad[points[:, 2] == 0.5, NORMAL], torch.tensor([[0.0, 0.0, 1.0]]).expand(16, 3))
    assert (cad[:, RGB] == 0).all() and (cad[:, MASK] == 0).all()
    assert (reprojected[:, TOKEN_TYPE] == TYPE_REPROJECTED).all() and (cad[:, TOKEN_TYPE] == TYPE_CAD).all()


def test_points_behind_or_beside_the_camera_are_invalid_and_zero():
    source = ArraySource()
    points, normals = cube_points()
    n_cad = len(points)
    # Hypothesis 0: straddling the camera plane; hypothesis 1: far to the side, in front of the camera.
    poses = translated([[[0.0, 0.0, 0.2]], [[30.0, 0.0, 2.5]]])
    tokens, token_mask = pose_tokens(source, points[None], normals[None], poses)
    reprojected_mask, cad_mask = token_mask[..., :n_cad], token_mask[..., n_cad:]
    z = points[:, 2] + 0.2
    assert torch.equal(cad_mask[0, 0], z > 0)
    assert cad_mask[1, 0].all() and not reprojected_mask[1, 0].any()
    # Near the camera only points within the field of view survive reprojection.
    u = FX * points[:, 0] / z + CX
    v = FY * points[:, 1] / z + CY
    in_view = (z > 0) & (u > -0.5) & (u < WIDTH - 0.5) & (v > -0.5) & (v < HEIGHT - 0.5)
    assert torch.equal(reprojected_mask[0, 0], in_view) and 0 < int(in_view.sum()) < int((z > 0).sum())
    assert (tokens[~token_mask] == 0).all()
    assert (tokens[token_mask][:, TOKEN_TYPE] > 0).all()
    assert len(source.calls) == 1 and source.calls[0] == int(in_view.sum())


def test_points_at_or_behind_the_camera_never_reach_a_pixel():
    source = ArraySource()
    # The camera centre, and a point just behind the camera on the ray through pixel (0, 0) reversed:
    # dividing by a clamped z would put both on pixel (0, 0).
    points = torch.tensor([[[0.0, 0.0, 0.0], [CX / FX * 1e-3, CY / FY * 1e-3, -1e-3]]], dtype=torch.float64)
    normals = torch.tensor([[[0.0, 0.0, -1.0]] * 2], dtype=torch.float64)
    tokens, token_mask = pose_tokens(source, points, normals, translated([[[0.0, 0.0, 0.0]]]))
    assert not token_mask.any() and (tokens == 0).all()
    assert source.calls == []


def test_step_tokens_layout_and_one_sample_call_per_step():
    source = ArraySource()
    config = InputConfig(n_bbox=300, n_cad=96)
    two_points, two_normals = (array.expand(2, -1, -1) for array in cube_points())
    box_tokens = sample_box_tokens(source, BOXES, config, np.random.default_rng(2))
    poses = translated([[[0.0, 0.0, 2.5], [0.6, 0.5, 3.0]]] * 4)
    steps = []
    for step in range(3):
        poses = Pose(poses.R, poses.t * (1.0 + 0.1 * step), poses.s)
        steps.append(step_tokens(box_tokens, source, two_points, two_normals, poses))
    assert len(source.calls) == 1 + 3
    tokens, token_mask = steps[-1]
    assert tokens.shape == (4, 2, config.n_input, C_INPUT) and token_mask.shape == (4, 2, config.n_input)
    for h in range(4):
        assert torch.equal(tokens[h, :, : config.n_bbox], box_tokens)
    assert torch.equal(steps[0][0][..., : config.n_bbox, :], steps[2][0][..., : config.n_bbox, :])
    types = tokens[..., TOKEN_TYPE]
    sections = [(TYPE_BOX, slice(0, 300)), (TYPE_REPROJECTED, slice(300, 396)), (TYPE_CAD, slice(396, 492))]
    for token_type, section in sections:
        valid = token_mask[..., section]
        assert valid.any() and (types[..., section][valid] == token_type).all()
    ids = tokens[..., DETECTION_ID]
    assert (ids[:, 0][token_mask[:, 0]] == 0).all() and (ids[:, 1][token_mask[:, 1]] == 1).all()
    with pytest.raises(ValueError, match="2 detections have box tokens"):
        step_tokens(box_tokens, source, two_points[:1], two_normals[:1], translated([[[0.0, 0.0, 2.5]]]))


def test_tokens_carry_no_gradient():
    points, normals = cube_points()
    t = torch.tensor([[0.0, 0.0, 2.5]], dtype=torch.float64, requires_grad=True)
    pose = Pose(torch.eye(3, dtype=torch.float64).expand(1, 3, 3), t, torch.ones_like(t))
    tokens, _ = pose_tokens(ArraySource(), points[None], normals[None], pose)
    assert not tokens.requires_grad


def test_chunk_indices_and_collate_pad_and_mask():
    assert [list(chunk) for chunk in chunk_indices(12, 5)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert chunk_indices(0, 5) == []
    generator = torch.Generator().manual_seed(0)
    turned = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    small = (
        torch.rand(2, 7, C_INPUT, generator=generator) + 1,
        torch.ones(2, 7, dtype=torch.bool),
        torch.stack([turned, torch.eye(3)]),
    )
    full_mask = torch.ones(5, 7, dtype=torch.bool)
    full_mask[3, 4:] = False
    full = (torch.rand(5, 7, C_INPUT, generator=generator) + 1, full_mask, turned.expand(5, 3, 3))
    batch = collate([small, full], n_mul=5)
    assert (batch.batch_size, batch.n_mul) == (2, 5) and batch.tokens.shape == (2, 5, 7, C_INPUT)
    assert batch.object_mask.tolist() == [[True, True, False, False, False], [True] * 5]
    assert (batch.tokens[0, 2:] == 0).all() and not batch.token_mask[0, 2:].any()
    assert torch.equal(batch.token_mask[1], full_mask)
    # Rotations follow their objects; padded slots hold the identity.
    assert torch.equal(batch.rotations[0, 0], turned) and torch.equal(batch.rotations[1, 4], turned)
    assert torch.equal(batch.rotations[0, 1:], torch.eye(3).expand(4, 3, 3))
    assert torch.equal(batch.tokens[0, :2, :, :DETECTION_ID], small[0][..., :DETECTION_ID])
    slots = torch.arange(5, dtype=torch.float32).view(5, 1).expand(5, 7)
    assert torch.equal(batch.tokens[1, ..., DETECTION_ID], torch.where(full_mask, slots, 0.0))
    with pytest.raises(ValueError, match="split with chunk_indices"):
        collate([(torch.zeros(6, 7, C_INPUT), torch.ones(6, 7, dtype=torch.bool), torch.eye(3).expand(6, 3, 3))], 5)
    with pytest.raises(ValueError, match="rotations must have shape"):
        collate([(torch.zeros(2, 7, C_INPUT), torch.ones(2, 7, dtype=torch.bool), torch.eye(3))], n_mul=5)
    with pytest.raises(ValueError, match="object_mask must be bool"):
        TokenBatch(batch.tokens, batch.token_mask, batch.object_mask.float(), batch.rotations)


def test_collate_image_puts_hypotheses_and_chunks_in_the_batch_dim():
    n_hypotheses, n_detections, n_input = 4, 12, 3
    tokens = torch.zeros(n_hypotheses, n_detections, n_input, C_INPUT)
    marker = torch.arange(n_hypotheses * n_detections, dtype=torch.float32).view(n_hypotheses, n_detections)
    tokens[..., DEPTH] = marker.unsqueeze(-1)
    tokens[..., DETECTION_ID] = torch.arange(n_detections, dtype=torch.float32).view(1, -1, 1)
    rotations = torch.eye(3).repeat(n_hypotheses, n_detections, 1, 1)
    rotations[..., 0, 0] = marker
    token_mask = torch.ones(n_hypotheses, n_detections, n_input, dtype=torch.bool)
    batch = collate_image(tokens, token_mask, rotations, n_mul=5)
    assert batch.tokens.shape == (4 * 3, 5, n_input, C_INPUT)
    assert batch.object_mask.sum(dim=1).tolist() == [5, 5, 2] * 4
    # Chunk 1 of hypothesis 2 holds detections 5..9 in slots 0..4, renumbered.
    assert torch.equal(batch.tokens[2 * 3 + 1, :, 0, DEPTH], marker[2, 5:10])
    assert torch.equal(batch.tokens[2 * 3 + 1, :, 0, DETECTION_ID], torch.arange(5, dtype=torch.float32))
    assert torch.equal(batch.rotations[2 * 3 + 1, :, 0, 0], marker[2, 5:10])
    assert torch.equal(batch.rotations[2 * 3 + 2, 2:], torch.eye(3).expand(3, 3, 3))
    outputs = batch.tokens[:, :, 0, DEPTH]
    assert torch.equal(uncollate(outputs, batch.object_mask).reshape(n_hypotheses, n_detections), marker)


def test_image_pixel_source_end_to_end():
    rgb, depth, normals, masks = wall_arrays()
    observation = Observation(
        image=rgb, camera=Camera(K=K_CAM, width=WIDTH, height=HEIGHT), depth=depth, normals=normals
    )
    detections = [
        Detection(id=17, category="chair", bbox=BOXES[0], cad="cube", mask=masks[0]),
        Detection(id=3, category="table", bbox=BOXES[1], cad="cube"),
    ]
    source = ImagePixelSource(observation, detections)
    config = InputConfig(n_bbox=500, n_cad=96)
    points, normals_cad = cube_points()
    two_points, two_normals = points.expand(2, -1, -1), normals_cad.expand(2, -1, -1)
    box_tokens = sample_box_tokens(source, np.stack([d.bbox for d in detections]), config, np.random.default_rng(3))
    poses = translated([[[0.0, 0.0, 2.5], [0.6, 0.5, 3.0]]] * 4)
    tokens, token_mask = step_tokens(box_tokens, source, two_points, two_normals, poses)
    pixels = pixels_of(box_tokens)
    np.testing.assert_array_equal(box_tokens[0, :, MASK].numpy(), masks[0][pixels[0, :, 1], pixels[0, :, 0]])
    # Without an instance mask the box is the mask: 1 inside [50, 30, 63, 47], 0 in the enlarged margin.
    inside_box = (pixels[1, :, 0] >= 50) & (pixels[1, :, 1] >= 30)
    assert torch.equal(box_tokens[1, :, MASK], inside_box.float())
    front = points[:, 2] == -0.5
    n_bbox, n_cad = config.n_bbox, config.n_cad
    reprojected_depth = tokens[:, 0, n_bbox : n_bbox + n_cad, DEPTH]
    cad_depth = tokens[:, 0, n_bbox + n_cad :, DEPTH]
    assert torch.allclose(reprojected_depth[:, front], cad_depth[:, front])
    batch = collate_image(tokens, token_mask, poses.R, n_mul=5)
    assert batch.tokens.shape == (4, 5, config.n_input, C_INPUT)
    assert batch.object_mask.tolist() == [[True, True, False, False, False]] * 4
    assert torch.equal(batch.tokens[:, :2], tokens) and torch.equal(batch.token_mask[:, :2], token_mask)

"""Tests of multisparc.model (Multi-SPARC-Net) and the LAMB optimizer of multisparc.training.lamb.

Inputs are random tokens with the real layout: 11 measured channels, a token type in {0, 1, 2} and the
slot index as detection_id. Networks use the small CPU config in eval mode; where an output has to move
with its inputs, the zero-initialised last layer is first given random weights.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from multisparc.geometry import Pose, apply_update, random_rotation
from multisparc.inputs import DETECTION_ID, TOKEN_TYPE
from multisparc.model import N_OUT, ModelConfig, MultiSparcNet, NetOutput
from multisparc.model.embedding import N_PAIR_FEATURES
from multisparc.training.config import load_config
from multisparc.training.lamb import Lamb

B, M, N = 3, 5, 40
SMALL = ModelConfig.cpu()
VARIANTS = {
    "multi": SMALL,
    "single": ModelConfig(**{**SMALL.to_dict(), "mode": "single"}),
    "joint_encoding": ModelConfig(**{**SMALL.to_dict(), "joint_encoding": True}),
    "joint_decoding": ModelConfig(**{**SMALL.to_dict(), "joint_decoding": True}),
    "shared_blocks": ModelConfig(**{**SMALL.to_dict(), "share_block_weights": True}),
    "linear_embedding": ModelConfig(**{**SMALL.to_dict(), "embedding": "linear"}),
}


def random_tokens(batch: int, n_mul: int, n_input: int, seed: int) -> torch.Tensor:
    """(batch, n_mul, n_input, 13) tokens of the real layout with random content."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, n_mul, n_input, 13, generator=generator)
    tokens[..., TOKEN_TYPE] = torch.randint(0, 3, (batch, n_mul, n_input), generator=generator).float()
    tokens[..., DETECTION_ID] = torch.arange(n_mul, dtype=torch.float32).view(1, n_mul, 1)
    return tokens


def make_net(config: ModelConfig, seed: int = 0, random_head: bool = True) -> MultiSparcNet:
    """A network in eval mode; random_head replaces the zero last layer so outputs are not all zero."""
    torch.manual_seed(seed)
    net = MultiSparcNet(config).eval()
    if random_head:
        torch.nn.init.normal_(net.decoder.out.weight, std=0.5)
        torch.nn.init.normal_(net.decoder.out.bias, std=0.5)
    return net


def object_mask_with_padding() -> torch.Tensor:
    """(B, M) bool: item 0 has 2 real objects, item 1 all 5, item 2 one."""
    mask = torch.zeros(B, M, dtype=torch.bool)
    mask[0, :2] = True
    mask[1] = True
    mask[2, :1] = True
    return mask


@torch.no_grad()
def run(net: MultiSparcNet, tokens: torch.Tensor, object_mask: torch.Tensor, token_mask=None) -> torch.Tensor:
    """(B, M, 11) outputs [update, logit] of one forward pass."""
    out = net(tokens, object_mask, token_mask)
    return torch.cat([out.update, out.logit[..., None]], dim=-1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_output_shapes_and_zero_padded_slots(variant):
    net = make_net(VARIANTS[variant])
    object_mask = object_mask_with_padding()
    out = net(random_tokens(B, M, N, seed=1), object_mask)
    assert isinstance(out, NetOutput)
    assert out.update.shape == (B, M, 10) and out.logit.shape == (B, M)
    assert torch.isfinite(out.update).all() and torch.isfinite(out.logit).all()
    assert (out.update[~object_mask] == 0).all() and (out.logit[~object_mask] == 0).all()
    assert out.update[object_mask].abs().min() > 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_initial_update_is_exactly_the_identity(variant):
    net = make_net(VARIANTS[variant], random_head=False)
    out = net(random_tokens(B, M, N, seed=2), object_mask_with_padding())
    assert (out.update == 0).all() and (out.logit == 0).all()
    generator = torch.Generator().manual_seed(0)
    pose = Pose(
        random_rotation((B, M), generator=generator).double(),
        torch.tensor([0.3, -0.2, 2.5]).expand(B, M, 3).double(),
        torch.tensor([0.8, 1.1, 0.6]).expand(B, M, 3).double(),
    )
    updated = apply_update(pose, out.update.double())
    assert torch.allclose(updated.R, pose.R, atol=1e-12)
    assert torch.allclose(updated.t, pose.t, atol=1e-12)
    assert torch.allclose(updated.s, pose.s, atol=1e-12)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_padded_objects_do_not_change_real_objects(variant):
    net = make_net(VARIANTS[variant])
    object_mask = object_mask_with_padding()
    tokens = random_tokens(B, M, N, seed=3)
    garbage = tokens.clone()
    noise = 100 * random_tokens(B, M, N, seed=4)
    garbage[~object_mask] = noise[~object_mask]
    garbage[0, 3, :5, :3] = float("nan")
    garbage[0, 4, 5:9] = float("inf")
    reference, padded = run(net, tokens, object_mask), run(net, garbage, object_mask)
    assert torch.isfinite(padded).all()
    assert torch.allclose(padded[object_mask], reference[object_mask], atol=1e-5)
    assert (padded[~object_mask] == 0).all()


@pytest.mark.parametrize("variant", ["multi", "single", "shared_blocks"])
def test_padding_slots_equal_no_slots(variant):
    # Separate encoding and decoding accept any M: 2 real objects padded to 5 slots give the same outputs
    # as the same 2 objects alone.
    net = make_net(VARIANTS[variant])
    tokens = random_tokens(1, M, N, seed=5)
    object_mask = torch.tensor([[True, True, False, False, False]])
    padded = run(net, tokens, object_mask)[0, :2]
    alone = run(net, tokens[:, :2], object_mask[:, :2])[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_objects_interact_in_multi_mode_only():
    object_mask = torch.ones(1, M, dtype=torch.bool)
    tokens = random_tokens(1, M, N, seed=6)
    changed = tokens.clone()
    changed[0, 3, :, :11] = random_tokens(1, 1, N, seed=7)[0, 0, :, :11]
    for variant, interacts in (("single", False), ("multi", True)):
        net = make_net(VARIANTS[variant])
        before, after = run(net, tokens, object_mask), run(net, changed, object_mask)
        assert not torch.allclose(before[0, 3], after[0, 3], atol=1e-3)
        others = [0, 1, 2, 4]
        difference = (before[0, others] - after[0, others]).abs().max()
        if interacts:
            assert difference > 1e-4, variant
        else:
            assert difference < 1e-6, variant


@pytest.mark.parametrize("variant", ["multi", "single"])
def test_permuting_objects_permutes_outputs(variant):
    net = make_net(VARIANTS[variant])
    object_mask = torch.tensor([[True, True, True, True, False]])
    tokens = random_tokens(1, M, N, seed=8)
    order = torch.tensor([2, 0, 3, 1, 4])
    permuted = tokens[:, order].clone()
    permuted[..., DETECTION_ID] = tokens[..., DETECTION_ID]
    assert torch.allclose(run(net, permuted, object_mask), run(net, tokens, object_mask)[:, order], atol=1e-5)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_masked_tokens_have_no_influence(variant):
    net = make_net(VARIANTS[variant])
    object_mask = object_mask_with_padding()
    tokens = random_tokens(B, M, N, seed=9)
    token_mask = torch.rand(B, M, N, generator=torch.Generator().manual_seed(10)) > 0.3
    changed = torch.where(token_mask[..., None], tokens, 50 * random_tokens(B, M, N, seed=11))
    changed[..., TOKEN_TYPE] = torch.where(token_mask, tokens[..., TOKEN_TYPE], 7.0)
    masked = run(net, tokens, object_mask, token_mask)
    assert torch.allclose(run(net, changed, object_mask, token_mask), masked, atol=1e-5)
    # The mask matters: without it the same tokens give other outputs.
    assert not torch.allclose(run(net, tokens, object_mask), masked, atol=1e-3)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_objects_without_valid_tokens_stay_finite(variant):
    net = make_net(VARIANTS[variant])
    object_mask = object_mask_with_padding()
    object_mask[2] = False
    token_mask = torch.ones(B, M, N, dtype=torch.bool)
    token_mask[0, 1] = False
    out = run(net, random_tokens(B, M, N, seed=12), object_mask, token_mask)
    assert torch.isfinite(out).all()
    assert out[0, 1].abs().max() > 0
    assert (out[2] == 0).all()


def test_shared_block_weights_reuse_one_set_after_the_first_block():
    separate, shared = make_net(VARIANTS["multi"]), make_net(VARIANTS["shared_blocks"])
    assert shared.block_schedule == [0, 1, 1] and separate.block_schedule == [0, 1, 2]
    per_block = sum(p.numel() for p in separate.cross_blocks[0].parameters())
    per_block += sum(p.numel() for p in separate.self_blocks[0].parameters())
    assert separate.count_parameters() - shared.count_parameters() == per_block


def test_joint_variants_depend_on_slot_order():
    # Joint encoding and decoding learn slot embeddings, so moving an object to another slot changes
    # its output (unlike the separate network, test_permuting_objects_permutes_outputs).
    object_mask = torch.ones(1, M, dtype=torch.bool)
    tokens = random_tokens(1, M, N, seed=13)
    order = torch.tensor([1, 0, 2, 3, 4])
    for variant in ("joint_encoding", "joint_decoding"):
        net = make_net(VARIANTS[variant])
        swapped = run(net, tokens[:, order], object_mask)[:, order]
        assert not torch.allclose(swapped, run(net, tokens, object_mask), atol=1e-4), variant


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flops_estimate_matches_torch_flop_counter(variant):
    config = ModelConfig(**{**VARIANTS[variant].to_dict(), "n_latent": 6, "n_mul": 3})
    net = make_net(config)
    counter = FlopCounterMode(display=False)
    # The math backend runs attention as visible matrix products, which the counter sees.
    with counter, sdpa_kernel(SDPBackend.MATH):
        net(random_tokens(2, 3, 17, seed=14), torch.ones(2, 3, dtype=torch.bool))
    assert net.flops_per_forward(batch=2, n_input=17) == counter.get_total_flops()


def test_paper_network_size():
    config = ModelConfig.paper()
    assert (config.n_latent, config.c_latent, config.n_blocks, config.n_self_attn, config.n_mul) == (80, 256, 3, 2, 5)
    net = MultiSparcNet(config)
    assert 5e6 < net.count_parameters() < 2e7
    # One item of 5 objects with N_bbox = 2000 and N_CAD = 500 tokens each: about 15 GFLOP.
    assert 1e10 < net.flops_per_forward(batch=1, n_input=3000) < 2e10


def test_bad_inputs_raise_clear_errors():
    net = make_net(SMALL)
    tokens, object_mask = random_tokens(1, M, N, seed=15), torch.ones(1, M, dtype=torch.bool)
    with pytest.raises(ValueError, match="tokens must have shape"):
        net(tokens[..., :12], object_mask)
    with pytest.raises(ValueError, match="object_mask must be bool"):
        net(tokens, object_mask.float())
    with pytest.raises(ValueError, match="token_mask must be bool"):
        net(tokens, object_mask, torch.ones(1, M, N - 1, dtype=torch.bool))
    bad_type = tokens.clone()
    bad_type[0, 0, 0, TOKEN_TYPE] = 3.0
    with pytest.raises(ValueError, match="token_type"):
        net(bad_type, object_mask)
    joint = make_net(VARIANTS["joint_encoding"])
    with pytest.raises(ValueError, match="n_mul = 5"):
        joint(random_tokens(1, 6, N, seed=16), torch.ones(1, 6, dtype=torch.bool))


def test_weights_round_trip_through_config_and_state_dict():
    config = VARIANTS["joint_encoding"]
    net = make_net(config, seed=1)
    rebuilt = MultiSparcNet(ModelConfig.from_dict(net.config.to_dict())).eval()
    rebuilt.load_state_dict(net.state_dict())
    tokens, object_mask = random_tokens(2, M, N, seed=17), torch.ones(2, M, dtype=torch.bool)
    assert torch.equal(run(rebuilt, tokens, object_mask), run(net, tokens, object_mask))


def test_model_config_round_trip_and_validation():
    config = ModelConfig(n_latent=40, mode="single", joint_decoding=True, dropout=0.1)
    data = config.to_dict()
    assert data["n_latent"] == 40 and data["mode"] == "single"
    assert ModelConfig.from_dict(data) == config
    assert ModelConfig.from_dict({"n_latent": 40}) == ModelConfig(n_latent=40)
    with pytest.raises(ValueError, match=r"unknown model config keys \['n_latents'\]"):
        ModelConfig.from_dict({"n_latents": 40})
    with pytest.raises(ValueError, match="mode"):
        ModelConfig(mode="joint")
    with pytest.raises(ValueError, match="n_latent"):
        ModelConfig(n_latent=0)
    with pytest.raises(ValueError, match="c_input must be 13"):
        ModelConfig(c_input=12)
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(dropout=1.0)


def lamb_reference(w, grads, lr, betas, eps, weight_decay, max_trust_ratio):
    """LAMB by hand in float64 numpy: the weights after one step per gradient."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        r = (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
        u = r + weight_decay * w
        w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(u)
        trust = min(w_norm / u_norm, max_trust_ratio) if w_norm > 0 and u_norm > 0 else 1.0
        w = w - lr * trust * u
    return w


def lamb_steps(w, grads, **options):
    """The weights after Lamb steps on a float64 parameter starting at w, one step per gradient."""
    param = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
    optimizer = Lamb([param], **options)
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return param.detach().numpy()


def test_lamb_steps_match_the_formula():
    options = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "max_trust_ratio": 10.0}
    # First step from w = (3, 4), ||w|| = 5: m_hat = g and v_hat = g^2, so r = g / (|g| + eps) ~ (1, -1),
    # u = r + 0.01 w ~ (1.03, -0.96) and w' = w - 0.1 * (5 / ||u||) * u.
    w, g = np.array([3.0, 4.0]), np.array([0.5, -2.0])
    u = np.array([0.5 / (0.5 + 1e-6), -2.0 / (2.0 + 1e-6)]) + 0.01 * w
    expected = w - 0.1 * (5.0 / np.linalg.norm(u)) * u
    assert np.allclose(expected, [2.63424, 4.34091], atol=1e-5)
    assert np.allclose(lamb_steps(w, [g], **options), expected, rtol=0, atol=1e-12)
    # Later steps use the running moments with their bias corrections.
    grads = [g, np.array([1.0, 0.3]), np.array([-0.2, 0.7])]
    assert np.allclose(lamb_steps(w, grads, **options), lamb_reference(w, grads, **options), rtol=0, atol=1e-12)


def test_lamb_trust_ratio_is_one_at_zero_weights_and_clamped():
    g = np.array([1.0, -1.0, 2.0])
    # Zero weights: trust 1, the step is lr * r = lr * sign(g).
    stepped = lamb_steps(np.zeros(3), [g], lr=0.01)
    assert np.allclose(stepped, -0.01 * g / (np.abs(g) + 1e-6), atol=1e-12)
    # ||w|| = 300 against ||u|| = sqrt(3): the ratio 173 is clamped to 2.
    w = np.full(3, 100 * math.sqrt(3))
    stepped = lamb_steps(w, [g], lr=0.01, max_trust_ratio=2.0)
    assert np.allclose(stepped, w - 0.01 * 2.0 * g / (np.abs(g) + 1e-6), atol=1e-12)


def test_lamb_state_dict_round_trip():
    torch.manual_seed(0)
    target = torch.randn(8)

    def make():
        param = torch.nn.Parameter(torch.ones(8))
        return param, Lamb([param], lr=0.05, weight_decay=0.01)

    def step(param, optimizer):
        optimizer.zero_grad()
        ((param - target) ** 2).sum().backward()
        optimizer.step()

    param, optimizer = make()
    for _ in range(3):
        step(param, optimizer)
    copy, copy_optimizer = make()
    copy.data.copy_(param.data)
    saved = io.BytesIO()
    torch.save(optimizer.state_dict(), saved)
    saved.seek(0)
    copy_optimizer.load_state_dict(torch.load(saved))
    step(param, optimizer)
    step(copy, copy_optimizer)
    assert torch.equal(param, copy)
    assert copy_optimizer.state[copy]["step"].item() == 4


def test_lamb_trains_a_small_regression():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    y = x @ torch.randn(8, 1, generator=generator) + 0.5
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 1))
    optimizer = Lamb(model.parameters(), lr=3e-2, weight_decay=1e-4)
    losses = []
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]


def test_lamb_trains_the_network_away_from_the_identity():
    # The zero last layer still learns: a few steps fit a fixed target update of a small batch.
    net = make_net(ModelConfig(**{**SMALL.to_dict(), "n_latent": 8}), random_head=False).train()
    tokens, object_mask = random_tokens(2, 3, 24, seed=19), torch.ones(2, 3, dtype=torch.bool)
    target = torch.randn(2, 3, N_OUT, generator=torch.Generator().manual_seed(20))
    optimizer = Lamb(net.parameters(), lr=3e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        out = net(tokens, object_mask)
        loss = (torch.cat([out.update, out.logit[..., None]], dim=-1) - target).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def _token(point: list[float], token_type: int) -> torch.Tensor:
    """One token at a camera-frame point (z-depth and unit bearing), other channels zero."""
    token = torch.zeros(13)
    p = torch.tensor(point)
    token[6], token[8:11], token[TOKEN_TYPE] = p[2], p / p.norm(), float(token_type)
    return token


def test_object_frame_features_place_tokens_relative_to_the_hypothesis() -> None:
    from multisparc.model.embedding import N_AXES_FEATURES, N_FEATURES, hypothesis_frames, object_frame_features

    # Features: rgb (3), mask, camera axes, object axes (rel first in each), depth flag, 2 globals.
    camera_rel, object_rel, flag = slice(4, 7), slice(4 + N_AXES_FEATURES, 7 + N_AXES_FEATURES), 4 + 2 * N_AXES_FEATURES
    # CAD points at the 8 corners of a cube of half-side 0.5 m around (0.2, 0, 3): radius sqrt(0.75).
    corners = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    centre = torch.tensor([0.2, 0.0, 3.0])
    cad = [_token((centre + c).tolist(), 2) for c in corners]
    # A box pixel seen 0.3 m behind the centre, a reprojected pixel without depth, an invalid token.
    box, no_depth, invalid = _token([0.2, 0.0, 3.3], 0), _token([0.2, 0.1, 3.0], 1), _token([5.0, 5.0, 9.0], 1)
    no_depth[6] = 0.0
    tokens = torch.stack([*cad, box, no_depth, invalid])
    valid = torch.ones(len(tokens), dtype=torch.bool)
    valid[-1] = False

    found_centre, radius = hypothesis_frames(tokens, valid)
    assert torch.allclose(found_centre, centre, atol=1e-5)
    assert radius.item() == pytest.approx(math.sqrt(0.75), rel=1e-5)

    features = object_frame_features(tokens, valid)
    assert features.shape == (len(tokens), N_FEATURES)
    rel = features[:, camera_rel]
    assert torch.allclose(rel[:8], corners / math.sqrt(0.75), atol=1e-5)
    assert torch.allclose(rel[8], torch.tensor([0.0, 0.0, 0.3 / math.sqrt(0.75)]), atol=1e-5)
    assert torch.equal(rel[9], torch.zeros(3))  # unknown depth: no position, depth flag 0
    assert features[:, flag].tolist() == [1.0] * 9 + [0.0, 0.0]
    assert torch.equal(features[10], torch.zeros(N_FEATURES))
    distance, ratio = features[0, -2:]
    assert distance.item() == pytest.approx(math.log(centre.norm().item()), rel=1e-5)
    assert ratio.item() == pytest.approx(math.log(math.sqrt(0.75) / centre.norm().item()), rel=1e-5)

    # Without a rotation both sets of axes agree; under a hypothesis turned 90 deg about the camera's y
    # axis (camera from object: object x -> camera -z), the box pixel 0.3 m behind the centre along
    # camera +z lies along object -x.
    assert torch.equal(features[:, object_rel], rel)
    turned = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    object_axes = object_frame_features(tokens, valid, turned)[:, object_rel]
    assert torch.allclose(object_axes[8], torch.tensor([-0.3 / math.sqrt(0.75), 0.0, 0.0]), atol=1e-5)
    assert torch.allclose(object_axes, rel @ turned, atol=1e-6)


def test_pair_features_compare_each_cad_point_with_its_pixel() -> None:
    from multisparc.model.embedding import N_FREQUENCIES, N_PAIR_FEATURES, pair_features

    # Layout of one object: 1 box token, 2 reprojected, 2 CAD tokens (n_cad = 2), CAD points 0.5 m apart
    # around (0, 0, 2): radius 0.25 m.
    cad = [_token([-0.25, 0.0, 2.0], 2), _token([0.25, 0.0, 2.0], 2)]
    cad[0][3:6] = torch.tensor([0.0, 0.0, -1.0])  # faces the camera: azimuth 180 deg about +Y
    cad[1][3:6] = torch.tensor([1.0, 0.0, 0.0])
    # Pixel 0 sees a surface 0.1 m behind CAD point 0, its normal turned 30 deg about +Y (towards -x);
    # pixel 1 is outside the image.
    seen = _token([-0.25 * 2.1 / 2.0, 0.0, 2.1], 1)
    turn = math.radians(30.0)
    seen[3:6] = torch.tensor([-math.sin(turn), 0.0, -math.cos(turn)])
    tokens = torch.stack([_token([0.0, 0.0, 2.0], 0), seen, torch.zeros(13), *cad])
    valid = torch.tensor([True, True, False, True, True])

    features = pair_features(tokens, valid, n_pairs=2)
    assert features.shape == (5, N_PAIR_FEATURES)
    residual, flag = 0.1 / 0.25, 1 + 2 * N_FREQUENCIES
    agreement, turned, own = flag + 4, slice(flag + 5, flag + 11), slice(flag + 11, None)
    for row in (1, 3):  # both tokens of the valid pair carry its features
        assert features[row, 0].item() == pytest.approx(residual, rel=1e-5)
        assert features[row, 1].item() == pytest.approx(math.sin(math.pi * residual), abs=1e-5)
        assert features[row, flag].item() == 1.0
        difference = torch.tensor([-math.sin(turn), 0.0, 1.0 - math.cos(turn)])
        assert torch.allclose(features[row, flag + 1 : flag + 4], difference, atol=1e-6)
        assert features[row, agreement].item() == pytest.approx(math.cos(turn), rel=1e-6)
        # The turn between the normals, harmonics 1, 2, 4: azimuth 180 + 30 deg against 180 deg.
        expected = [math.cos(k * turn) for k in (1, 2, 4)] + [math.sin(k * turn) for k in (1, 2, 4)]
        assert torch.allclose(features[row, turned], torch.tensor(expected), atol=1e-6)
    assert torch.equal(features[[0, 2, 4], :own.start], torch.zeros(3, own.start))  # box token, invalid pair
    # Every valid token's own normal: CAD normal 1 points along +x, azimuth 90 deg; the box token has
    # no normal; the invalid token gets nothing.
    assert torch.allclose(features[4, own], torch.tensor([0.0, -1.0, 1.0, 1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.equal(features[[0, 2], own], torch.zeros(2, 6))

    # Under a hypothesis turned 90 deg about the camera's y axis the normal residual along camera -z
    # reads along object +x (a zeroed CAD normal makes the residual the pixel's normal), and the turn
    # between normals is unchanged: it does not depend on the hypothesis.
    cad_without_normal = tokens.clone()
    cad_without_normal[3, 3:6] = 0.0
    cad_without_normal[1, 3:6] = torch.tensor([0.0, 0.0, -1.0])
    quarter = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    rotated = pair_features(cad_without_normal, valid, 2, quarter)
    assert torch.allclose(rotated[1, flag + 1 : flag + 4], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(pair_features(tokens, valid, 2, quarter)[1, turned], features[1, turned], atol=1e-6)

    with pytest.raises(ValueError, match="compare_pairs must equal the inputs' n_cad"):
        pair_features(tokens, valid, n_pairs=1)  # would pair CAD token 0 with reprojected token 1


def test_a_network_grown_with_compared_pairs_starts_as_the_network_it_grew_from() -> None:
    from multisparc.model import with_compare_pairs

    n_cad = 6
    tokens = random_tokens(B, M, 4 + 2 * n_cad, seed=3)
    tokens[..., 4 : 4 + n_cad, TOKEN_TYPE] = 1.0
    tokens[..., 4 + n_cad :, TOKEN_TYPE] = 2.0
    tokens[..., 6] = tokens[..., 6].abs() + 1.0  # known depths
    mask = object_mask_with_padding()
    net = make_net(SMALL)
    grown = MultiSparcNet(replace(SMALL, compare_pairs=n_cad)).eval()
    grown.load_state_dict(with_compare_pairs(net.state_dict(), n_cad))
    before, after = net(tokens, mask), grown(tokens, mask)
    assert torch.allclose(before.update, after.update, atol=1e-6)
    assert torch.allclose(before.logit, after.logit, atol=1e-6)
    with torch.no_grad():  # the pair features do reach the outputs
        grown.embedding.features.weight[:, -N_PAIR_FEATURES:].normal_(0.0, 1.0)
    assert not torch.allclose(grown(tokens, mask).update[mask], before.update[mask], atol=1e-4)


def test_bench_model_reports_each_preset_size(tmp_path: Path) -> None:
    from multisparc import cli

    markdown = tmp_path / "B.md"
    assert cli.main(["bench", "model", "--presets", "paper", "cpu", "--markdown", str(markdown)]) == 0
    rows = {line.split("|")[1].strip(): line.split("|") for line in markdown.read_text().splitlines() if "|" in line}
    paper = MultiSparcNet(load_config("paper").model)
    assert rows["paper"][5].strip() == f"{paper.count_parameters() / 1e6:.3f}"
    assert rows["paper"][3].strip() == "linear" and "compared pairs" in rows["cpu"][3]
    assert float(rows["paper"][6]) > 10 * float(rows["cpu"][6])

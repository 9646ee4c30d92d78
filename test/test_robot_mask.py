"""The robot taken out of a pair (cde_core/robot_mask.py), the same in training, the runtimes and the node."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cde_core.preprocessing import IMAGENET_MEAN, Preprocessing, preprocess_rgb
from cde_core.robot_mask import (RobotMaskError, mask_pair, neutral_fill, patch_validity, prepare_mask,
                                 suppress_masked_patches)
from cde_ros.mask_conversion import MaskConversionError, mask_from_image


def _pair(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (size, size, 3), dtype=np.uint8), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_union_rule_fills_a_pixel_that_is_robot_in_either_frame_alike_in_both() -> None:
    before, after = _pair()
    mb, ma = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    mb[:8, :8] = 255  # the arm here before
    ma[24:, 24:] = 255  # and there after
    pair = mask_pair(before, after, mb, ma, 32, IMAGENET_MEAN, (4, 4))
    fill = neutral_fill(IMAGENET_MEAN)
    for region in (np.s_[:8, :8], np.s_[24:, 24:]):
        assert (pair.before[region] == fill).all() and (pair.after[region] == fill).all()
    np.testing.assert_array_equal(pair.before[8:24, 8:24], before[8:24, 8:24])  # the rest untouched
    np.testing.assert_array_equal(pair.after[8:24, 8:24], after[8:24, 8:24])
    # the fill is the mean: ~0 after normalisation
    assert np.abs(preprocess_rgb(pair.before, Preprocessing(img_size=32))[:, :8, :8]).max() < 0.01
    valid = pair.patch_valid.reshape(4, 4)
    assert valid[0, 0] == 0 and valid[3, 3] == 0 and valid.sum() == 14


def test_mostly_masked_patches_are_invalid_and_a_little_arm_is_not() -> None:
    robot = np.zeros((32, 32), bool)
    robot[:5, :8] = True  # 5/8 of patch (0, 0)
    robot[8:10, 8:16] = True  # 2/8 of patch (1, 1)
    valid = patch_validity(robot, (4, 4)).reshape(4, 4)
    assert valid[0, 0] == 0 and valid[1, 1] == 1 and valid.sum() == 15


def test_masks_are_resized_conservatively_and_must_match_their_frame() -> None:
    mask = np.zeros((96, 96), np.uint8)
    mask[10, 10] = 255  # one camera pixel of robot
    small = prepare_mask(mask, 32, (96, 96, 3))
    assert small.shape == (32, 32) and small.sum() >= 1 and small[3, 3]
    with pytest.raises(RobotMaskError, match="robot mask is 64x64 but its frame is 96x96"):
        prepare_mask(np.zeros((64, 64), np.uint8), 32, (96, 96, 3))
    with pytest.raises(RobotMaskError, match="one channel"):
        prepare_mask(np.zeros((96, 96, 3), np.uint8), 32)


def test_missing_or_all_covering_masks_are_refused_and_mode_none_ignores_masks() -> None:
    before, after = _pair()
    with pytest.raises(RobotMaskError, match="the after frame has no robot mask"):
        mask_pair(before, after, np.zeros((32, 32)), None, 32, IMAGENET_MEAN, (4, 4))
    with pytest.raises(RobotMaskError, match="covers 100%"):
        mask_pair(before, after, np.full((32, 32), 255), np.zeros((32, 32)), 32, IMAGENET_MEAN, (4, 4))
    pair = mask_pair(before, after, None, None, 32, IMAGENET_MEAN, (4, 4), mode="none")
    np.testing.assert_array_equal(pair.before, before) and pair.patch_valid.all()


def test_masked_patches_get_a_zero_delta_and_never_enter_top_k_in_torch_and_numpy() -> None:
    from cde_core.models.pair_model import topk_changed_patches

    before = torch.zeros(1, 4, 3)
    after = torch.tensor([[[9.0, 9, 9], [1, 0, 0], [0, 2, 0], [0, 0, 0.5]]])  # patch 0 changed most...
    valid = torch.tensor([[0.0, 1, 1, 1]])  # ...but it is the arm
    suppressed = suppress_masked_patches(before, after, valid)
    indices, _ = topk_changed_patches(suppressed - before, 2)
    assert set(indices[0].tolist()) == {1, 2}
    np.testing.assert_allclose(suppress_masked_patches(before.numpy(), after.numpy(), valid.numpy()), suppressed.numpy())


def test_the_mask_mode_travels_in_the_checkpoint_and_the_onnx_export(tmp_path: Path) -> None:
    from conftest import write_tiny_node_model

    from cde_core.checkpoint import read_meta
    from cde_core.runtime import load_runtime
    from cde_core.runtime.compare_frames import compact_frame, compare_frames

    index = write_tiny_node_model(tmp_path, robot_mask="union")
    assert read_meta(tmp_path / "m.safetensors").preprocessing.robot_mask == "union"
    onnx, torch_rt = load_runtime(index), load_runtime(tmp_path / "m.safetensors")
    assert onnx.metadata.preprocessing.robot_mask == "union"
    before, after = _pair(48)
    mb, ma = np.zeros((48, 48), np.uint8), np.zeros((48, 48), np.uint8)
    mb[:20, :20], ma[30:, 30:] = 255, 255
    results = [compare_frames(rt, compact_frame(before, mb, 32), after, ma).result for rt in (onnx, torch_rt)]
    np.testing.assert_allclose(results[0].scores, results[1].scores, atol=1e-4)
    assert set(results[0].changed_patches.tolist()) == set(results[1].changed_patches.tolist())
    # where the arm is makes no difference once masked: the arm's poses swapped, and painted in other
    # colours, give the very same answer (the union, and every pixel outside it, are the same)
    arm_b, arm_a = before.copy(), after.copy()
    arm_b[30:, 30:], arm_a[:20, :20] = 7, 250  # the arm now here before, there after
    swapped = compare_frames(onnx, compact_frame(arm_b, ma, 32), arm_a, mb).result
    np.testing.assert_allclose(swapped.scores, results[0].scores, atol=1e-6)
    assert swapped.effect_magnitude == pytest.approx(results[0].effect_magnitude, abs=1e-5)
    with pytest.raises(RobotMaskError):
        compare_frames(onnx, compact_frame(before, None, 32), after, None)


def test_mask_messages_are_mono8_and_their_fields_must_agree() -> None:
    data = bytes(range(6)) + b"\x00\x00"  # 2 rows of 3 pixels, step 4
    np.testing.assert_array_equal(mask_from_image(3, 2, "mono8", 4, data[:8]), [[0, 1, 2], [4, 5, 0]])
    with pytest.raises(MaskConversionError, match="encoding 'rgb8'"):
        mask_from_image(3, 2, "rgb8", 9, bytes(18))
    with pytest.raises(MaskConversionError, match="bytes"):
        mask_from_image(3, 2, "mono8", 4, bytes(5))
    with pytest.raises(MaskConversionError, match="step 2 < width 3"):
        mask_from_image(3, 2, "mono8", 2, bytes(8))

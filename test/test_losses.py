"""Loss terms on hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from cde_core.losses import LossWeights, PairCriterion, block_sparsity_loss, l1_sparsity, supervised_contrastive_loss


def test_supcon_hand_computed() -> None:
    # Two classes; class 0 = {e1, e1}, class 1 = {e2, e2}. Each anchor: sim to positive 1, to the two
    # negatives 0. loss = -log(e^{1/T} / (e^{1/T} + 2 e^0)).
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # normalised inside
    labels = torch.tensor([0, 0, 1, 1])
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert supervised_contrastive_loss(feats, labels, t).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_antiparallel_negatives_lower_loss() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    orthogonal = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    opposite = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    assert supervised_contrastive_loss(opposite, labels) < supervised_contrastive_loss(orthogonal, labels)


def test_supcon_two_positives_hand_computed() -> None:
    # Anchor with two positives at cos 1 and one negative at cos 0 (three identical vectors + one other).
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 0, 1])
    t = 1.0
    denominator = 2 * math.e + 1
    per_anchor = -math.log(math.e / denominator)  # class-0 anchors; the class-1 anchor has no positive
    assert supervised_contrastive_loss(feats, labels, t).item() == pytest.approx(per_anchor, rel=1e-5)


def test_supcon_without_positives_is_zero_with_graph() -> None:
    feats = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(feats, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()


def test_l1_hand_computed() -> None:
    deltas = torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.5, -1.0]])
    assert l1_sparsity(deltas).item() == pytest.approx((3.0 + 2.0) / 2)
    assert l1_sparsity(deltas, "mean").item() == pytest.approx(5.0 / 6)
    with pytest.raises(ValueError):
        l1_sparsity(deltas, "max")


def test_block_sparsity_ignores_the_action_block() -> None:
    before = torch.zeros(1, 4)
    after = torch.tensor([[3.0, 3.0, 1.0, 1.0]])
    dim_block = torch.tensor([0, 0, 1, 1])
    action_block = torch.tensor([0, 1])
    # label 0 -> block 0 may change; only dims 2,3 count: mean of 1^2 = 1
    assert block_sparsity_loss(before, after, torch.tensor([0]), action_block, dim_block).item() == pytest.approx(1.0)
    assert block_sparsity_loss(before, after, torch.tensor([1]), action_block, dim_block).item() == pytest.approx(9.0)


def _cde_output() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"global_logits": torch.randn(4, 3), "delta_global": torch.randn(4, 8),
            "patch_logits": torch.randn(4, 2, 3), "delta_topk": torch.randn(4, 2, 8), "logits": torch.randn(4, 3)}


def test_criterion_weights_and_parts() -> None:
    out, labels = _cde_output(), torch.tensor([0, 1, 0, 2])
    total, parts = PairCriterion(LossWeights(ce=1.0, contrast=2.0, sparsity=1.0))(out, labels)
    assert set(parts) == {"ce", "contrast", "sparsity"}
    assert total.item() == pytest.approx(parts["ce"] + 2.0 * parts["contrast"] + parts["sparsity"], rel=1e-5)
    # L1 over global deltas and every selected patch delta
    all_deltas = torch.cat([out["delta_global"], out["delta_topk"].flatten(0, 1)])
    assert parts["sparsity"] == pytest.approx(all_deltas.abs().sum(-1).mean().item(), rel=1e-5)


def test_term_off_at_zero_weight() -> None:
    total, parts = PairCriterion(LossWeights(contrast=0.0, sparsity=0.0))(_cde_output(), torch.tensor([0, 1, 0, 2]))
    assert set(parts) == {"ce"}
    assert total.item() == pytest.approx(parts["ce"])


def test_icm_needs_objects() -> None:
    out = {"logits": torch.randn(2, 3), "critic_logits": torch.randn(2, 4)}
    with pytest.raises(ValueError, match="object labels"):
        PairCriterion(LossWeights(icm=1.0))(out, torch.tensor([0, 1]))


def test_supcon_leaves_out_zero_length_deltas_instead_of_exploding_their_gradient() -> None:
    """Masked-out patches have exactly zero deltas; normalising them gave gradients of ~1e12 and a collapse."""
    torch.manual_seed(0)
    deltas = torch.randn(6, 8)
    deltas[4:] = 0.0  # two masked patches
    deltas.requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 0, 1])
    loss = supervised_contrastive_loss(deltas, labels)
    loss.backward()
    assert torch.isfinite(loss) and deltas.grad[4:].abs().max() == 0 and deltas.grad.abs().max() < 100
    reference = supervised_contrastive_loss(deltas[:4].detach(), labels[:4])
    assert float(loss) == pytest.approx(float(reference), rel=1e-6)
    assert float(supervised_contrastive_loss(torch.zeros(3, 8), torch.tensor([0, 0, 1]))) == 0.0


def test_the_no_change_class_is_left_out_of_supcon() -> None:
    """'Nothing happened' has no direction: its deltas are not pulled together (they collapsed training)."""
    torch.manual_seed(1)
    out = {"global_logits": torch.randn(6, 3), "delta_global": torch.randn(6, 8)}
    labels = torch.tensor([0, 0, 2, 2, 1, 1])  # class 1 = none
    weights = LossWeights(ce=1.0, contrast=1.0, sparsity=0.0)
    _, with_none = PairCriterion(weights)(out, labels)
    _, without = PairCriterion(weights, no_change_index=1)(out, labels)
    changed = labels != 1
    expected = supervised_contrastive_loss(out["delta_global"][changed], labels[changed], weights.temperature)
    assert without["contrast"] == pytest.approx(float(expected), rel=1e-6)
    assert with_none["contrast"] != pytest.approx(without["contrast"], rel=1e-3)

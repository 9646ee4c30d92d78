"""Loss terms, one module each, combined by PairCriterion."""
from cde_core.losses.block_sparsity import block_sparsity_loss
from cde_core.losses.criterion import LossWeights, PairCriterion
from cde_core.losses.sparsity import l1_sparsity
from cde_core.losses.supcon import supervised_contrastive_loss

__all__ = ["LossWeights", "PairCriterion", "block_sparsity_loss", "l1_sparsity", "supervised_contrastive_loss"]

"""cde_core: Causal Delta Embeddings in PyTorch + timm. Never imports ROS."""

__version__ = "0.1.0"

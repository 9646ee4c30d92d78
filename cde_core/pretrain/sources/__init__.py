"""Unlabelled frames for pretraining: image folders, pair manifests, simulator renders, recorded bags."""
from cde_core.pretrain.sources.bag_frames import BagFrameSource
from cde_core.pretrain.sources.base import FrameSource, FrameSourceError
from cde_core.pretrain.sources.frame_bank import FrameBank, build_frame_bank, build_source
from cde_core.pretrain.sources.image_folder import ImageFolderSource
from cde_core.pretrain.sources.manifest_frames import ManifestFrameSource
from cde_core.pretrain.sources.sim_frames import SimFrameSource

__all__ = ["BagFrameSource", "FrameBank", "FrameSource", "FrameSourceError", "ImageFolderSource", "ManifestFrameSource",
           "SimFrameSource", "build_frame_bank", "build_source"]

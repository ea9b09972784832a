"""Training data: image folders, unpaired random crops, local patches."""

from .folders import DataError, list_images
from .patches import crop_patches, random_patch_boxes
from .unpaired import UnpairedImageDataset, load_rgb, scan_images

__all__ = [
    "DataError",
    "UnpairedImageDataset",
    "crop_patches",
    "list_images",
    "load_rgb",
    "random_patch_boxes",
    "scan_images",
]

"""Data loading for CycleGAN: robust image decoding, train/test transforms, the unpaired
two-domain dataset with its reproducible sampler and loader, and the built-in synthetic dataset.
"""

from .dataset import (
    PHASES,
    DatasetLayoutError,
    UnpairedDataset,
    UnpairedSampler,
    domain_dirs,
    make_loader,
)
from .images import (
    IMAGE_EXTENSIONS,
    UnreadableImageError,
    convert_mode,
    image_to_tensor,
    is_image_file,
    list_images,
    load_image,
    tensor_to_image,
)
from .synthetic import TRUTH_DIR, from_domain_b, make_synthetic_dataset, to_domain_b
from .transforms import ResizeMode, test_transform, train_transform

__all__ = [
    "IMAGE_EXTENSIONS",
    "PHASES",
    "TRUTH_DIR",
    "DatasetLayoutError",
    "ResizeMode",
    "UnpairedDataset",
    "UnpairedSampler",
    "UnreadableImageError",
    "convert_mode",
    "domain_dirs",
    "from_domain_b",
    "image_to_tensor",
    "is_image_file",
    "list_images",
    "load_image",
    "make_loader",
    "make_synthetic_dataset",
    "tensor_to_image",
    "test_transform",
    "to_domain_b",
    "train_transform",
]

"""cyclegan: unpaired image-to-image translation with CycleGAN."""

__version__ = "0.1.0"

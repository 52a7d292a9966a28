"""Inference: translating images with trained, exported or pretrained generators."""

from cyclegan.inference.translator import Translator

__all__ = ["Translator"]

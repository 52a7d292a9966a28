"""Inference: translating images with trained generators."""

from cyclegan.inference.translator import Translator

__all__ = ["Translator"]

"""cyclegan: unpaired image-to-image translation with CycleGAN."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `from cyclegan import Translator` without making `import cyclegan` import torch
    if name == "Translator":
        from cyclegan.inference.translator import Translator

        return Translator
    raise AttributeError(f"module 'cyclegan' has no attribute {name!r}")

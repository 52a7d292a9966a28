"""Inference: translating images with trained, exported or pretrained generators
(`translator`), image files in bulk (`files`), tiles (`tiling`), exports (`export`), the
reference implementation's files (`reference`) and published generators (`pretrained`)."""

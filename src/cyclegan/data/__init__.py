"""Data for CycleGAN: image files and their decoding (`images`), train/test transforms
(`transforms`), the unpaired two-domain dataset with its sampler and loader (`dataset`), the
built-in synthetic dataset (`synthetic`), dataset downloads, preparation and checks.

Import names from their modules; the package itself imports nothing, so that light commands
(`cyclegan data list`) do not load torch.
"""

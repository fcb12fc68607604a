"""The input normalization every model of this project is trained with: ImageNet mean and std.

Fractions of [0, 1] pixels, per RGB channel. ``segment train`` normalizes its
images with them (``data.transforms``) and stores them in every checkpoint
(``segment.checkpoint``); inference reads them back from the checkpoint and
folds ``(x - mean) / std`` into the exported graph. These constants are used
directly only where no checkpoint exists yet: training, a randomly
initialised preset, and the torchvision peer of ``segment bench``.
"""

from collections.abc import Sequence

import numpy as np

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def same_normalization(norm: dict, mean: Sequence[float], std: Sequence[float]) -> bool:
    """Whether a checkpoint's ``normalization`` entry is ``mean`` / ``std`` (float tolerance, lengths first)."""
    return all(len(norm.get(key, ())) == len(want) and bool(np.allclose(norm[key], want))
               for key, want in (("mean", mean), ("std", std)))

"""Datasets, label spaces and augmentation pipelines.

Import the submodule you need (``data.cityscapes``, ``data.transforms``...):
this package imports nothing at load time so that ``segment --help`` stays fast.
``data`` depends on numpy, torch, OpenCV, albumentations, cityscapesscripts and
small utility modules of ``segment`` (atomic writes, the image reader, the
normalization constants, errors), never on the model, ``train`` or ``serve``
(docs/design.md, "Layers").
"""

import os

# albumentations asks PyPI for a newer version each time it is imported; offline
# (the trainer's usual GPU box, CI) that is a 2 s wait and a warning per process and
# per DataLoader worker. Users who want the check can still set the variable to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

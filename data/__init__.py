"""Datasets, label spaces and augmentation pipelines.

Import the submodule you need (``data.cityscapes``, ``data.transforms``...):
this package imports nothing at load time so that ``segment --help`` stays fast.
``data`` depends only on numpy, torch, OpenCV, albumentations and
cityscapesscripts, never on ``segment``/``train``/``serve`` (DESIGN.md section 2).
"""

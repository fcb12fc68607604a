"""Fixtures for the data tests: small synthetic Cityscapes trees made on the fly."""

import shutil

import pytest

from data.synthetic import write_synthetic_cityscapes

TREE_SIZE = (128, 256)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A read-only synthetic tree: 4 train + 4 val images at 128x256. Do not modify it."""
    return write_synthetic_cityscapes(out=tmp_path_factory.mktemp("synth") / "cs", n=4, size=TREE_SIZE, seed=3)


@pytest.fixture
def tree(synth_root, tmp_path):
    """A private copy of the synthetic tree that a test may break."""
    return shutil.copytree(synth_root, tmp_path / "cs")

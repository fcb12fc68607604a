"""Aspect-keeping prediction at a fixed model size (segment.letterbox)."""

from __future__ import annotations

import numpy as np
import pytest

from segment.letterbox import fit_inside, predict_letterboxed
from segment.predict import Prediction


class CanvasPredictor:
    """Labels 1 where the model input is the padding colour, 0 elsewhere; remembers its inputs."""

    mean = np.array([123.675, 116.28, 103.53], np.float32)

    def __init__(self):
        self.inputs = []

    def predict(self, image, *, size):
        self.inputs.append((image.copy(), size))
        pad = np.all(image == np.rint(self.mean).astype(np.uint8), axis=2)
        return Prediction(labels=pad.astype(np.uint8), model_ms=1.0, total_ms=1.0, backend="stub",
                          precision="fp32", input_size=image.shape[:2])


def test_fit_inside():
    assert fit_inside((360, 480), (512, 1024)) == (512, 683)
    assert fit_inside((1024, 2048), (512, 1024)) == (512, 1024)
    assert fit_inside((4000, 1000), (512, 1024)) == (512, 128)


def test_four_by_three_photo_is_padded_not_stretched():
    stub = CanvasPredictor()
    image = np.full((360, 480, 3), 7, np.uint8)
    out = predict_letterboxed(stub, image, size="half")
    canvas, size = stub.inputs[0]
    assert size == (512, 1024) and canvas.shape == (512, 1024, 3)
    assert (canvas[:, 170:170 + 683] == 7).all()  # the photo, scaled by 512/360 both ways, centred
    assert (canvas[:, :170] == [124, 116, 104]).all() and (canvas[:, 170 + 683:] == [124, 116, 104]).all()
    assert out.labels.shape == (360, 480) and (out.labels == 0).all()  # no padding label leaks back


def test_same_aspect_is_the_plain_resize_and_native_passes_through():
    stub = CanvasPredictor()
    predict_letterboxed(stub, np.zeros((256, 512, 3), np.uint8), size="full")
    predict_letterboxed(stub, np.zeros((10, 30, 3), np.uint8), size="native")
    assert [(img.shape, size) for img, size in stub.inputs] == [((256, 512, 3), (1024, 2048)), ((10, 30, 3), "native")]


@pytest.mark.parametrize("hw", [(300, 1000), (700, 300), (1, 1)])
def test_any_shape_comes_back_at_its_size(hw):
    out = predict_letterboxed(CanvasPredictor(), np.full((*hw, 3), 3, np.uint8), size=(64, 128))
    assert out.labels.shape == hw and (out.labels == 0).all()

"""The demo's framework-free prediction function (serve.segmentation)."""

from __future__ import annotations

import numpy as np
import pytest

from segment.predict import Prediction
from serve.segmentation import (
    RESOLUTIONS,
    legend,
    legend_html,
    segment_photo,
    summary_dict,
    summary_markdown,
)


class StubPredictor:
    """Returns fixed labels, so legend shares and colours can be checked exactly."""

    def __init__(self, labels_fn):
        self.labels_fn = labels_fn
        self.classes = ["road", "<b>car</b>", "sky"]
        self.palette = np.array([[128, 64, 128], [0, 0, 142], [70, 130, 180]], dtype=np.uint8)
        self.name = "stub"
        self.calls = []

    def predict(self, image, *, size):
        self.calls.append((image.shape, size))
        labels = self.labels_fn(image.shape[:2])
        return Prediction(labels=labels, model_ms=1.0, total_ms=2.0, backend="stub", precision="fp32",
                          input_size=(512, 1024))


def halves(hw):
    labels = np.zeros(hw, np.uint8)
    labels[: hw[0] // 4] = 2  # top quarter sky, rest road
    return labels


def test_legend_shares_and_colours_exact():
    stub = StubPredictor(halves)
    image = np.full((100, 200, 3), 200, np.uint8)
    result = segment_photo(stub, image, resolution="full")
    assert stub.calls == [((100, 200, 3), "full")]
    assert [(e.name, e.share) for e in result.legend] == [("road", 0.75), ("sky", 0.25)]  # car absent
    assert (result.color[0, 0] == [70, 130, 180]).all() and (result.color[-1, -1] == [128, 64, 128]).all()
    assert (result.overlay(0.0) == image).all()
    assert (result.overlay(1.0) == result.color).all()
    assert (result.overlay(0.5)[-1, -1] == np.rint((image[-1, -1] + np.array([128, 64, 128])) / 2)).all()


def test_class_names_are_escaped_in_html():
    stub = StubPredictor(lambda hw: np.ones(hw, np.uint8))
    result = segment_photo(stub, np.zeros((10, 10, 3), np.uint8))
    page = legend_html(result.legend)
    assert "<b>car</b>" not in page and "&lt;b&gt;car&lt;/b&gt;" in page and "100.0%" in page


def test_large_photo_is_fitted_before_the_model():
    stub = StubPredictor(halves)
    result = segment_photo(stub, np.zeros((3000, 6000, 3), np.uint8), max_side=2048)
    assert stub.calls[0][0] == (1024, 2048, 3)
    assert result.labels.shape == (1024, 2048) and result.original_size == (3000, 6000)
    assert "fitted from 3000x6000" in summary_markdown(result, "stub")


def test_unknown_resolution_is_refused():
    with pytest.raises(ValueError, match="resolution"):
        segment_photo(StubPredictor(halves), np.zeros((8, 8, 3), np.uint8), resolution="quarter")


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
def test_real_model_labels_match_colours(predictor, resolution):
    image = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)
    result = segment_photo(predictor, image, resolution=resolution)
    assert result.labels.shape == (96, 160) and result.labels.dtype == np.uint8
    assert result.labels.max() < len(predictor.classes)
    assert (result.color == predictor.palette[result.labels]).all()
    assert abs(sum(e.share for e in result.legend) - 1.0) < 1e-9
    info = summary_dict(result, predictor.name)
    # 5:3, so the 16:9 bucket at the paper's height, not a stretched 512x1024 / 1024x2048
    assert info["model_input_hw"] == ([512, 928] if resolution == "half" else [1024, 1824])
    assert info["model_valid_hw"] == ([512, 853] if resolution == "half" else [1024, 1707])
    assert info["bucket"] == "16:9"
    assert info["backend"] == predictor.backend and info["model_ms"] > 0
    text = summary_markdown(result, predictor.name)
    assert f"model ran at **{info['model_input_hw'][0]}x{info['model_input_hw'][1]} ({resolution}, 16:9 bucket: " \
           f"photo resized to {info['model_valid_hw'][0]}x{info['model_valid_hw'][1]}, the rest padded)**" in text


def test_two_to_one_photo_runs_at_the_papers_input(predictor):
    result = segment_photo(predictor, np.zeros((100, 200, 3), np.uint8), resolution="full")
    info = summary_dict(result, predictor.name)
    assert info["model_input_hw"] == info["model_valid_hw"] == [1024, 2048] and info["bucket"] == "2:1"
    assert "model ran at **1024x2048 (full, 2:1 bucket)**" in summary_markdown(result, predictor.name)


def test_tiny_share_is_not_shown_as_zero():
    labels = np.zeros((100, 100), np.uint8)
    labels[0, 0] = 1
    page = legend_html(legend(labels, ["a", "b"], np.zeros((2, 3), np.uint8)))
    assert "'>&lt;0.1%<" in page and "'>0.0%<" not in page and "'>100.0%<" in page


def test_legend_counts_every_class_present():
    labels = np.array([[0, 0, 1, 5]], np.uint8)
    entries = legend(labels, [f"c{i}" for i in range(6)], np.zeros((6, 3), np.uint8))
    assert [(e.train_id, e.share) for e in entries] == [(0, 0.5), (1, 0.25), (5, 0.25)]

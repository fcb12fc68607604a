"""The small-input state (BN statistics, or weights too): which inputs get it, and that every path runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data.labels import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from segment.accuracy import calibrate_batchnorm
from segment.checkpoint import make_checkpoint, model_from_checkpoint, save_checkpoint
from segment.model import build_model
from segment.predict import Predictor
from segment.presets import get_preset
from segment.quantize import calibration_images
from segment.sizes import SIZES
from segment.small_inputs import CHECKPOINT_KEY, LEGACY_KEY, SizedModel, SmallInputState, bn_statistics, float_state

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
MAX_PIXELS = 200 * 300


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(get_preset("small").config)
    calibrate_batchnorm(model, calibration_images((96, 192), count=2), mean=MEAN, std=STD)
    return model.eval()


def _shifted_stats(model: torch.nn.Module) -> SmallInputState:
    """Statistics unlike the model's own, so that outputs tell which set ran."""
    stats = {k: (v * 1.7 if k.endswith("running_var") else v + 0.3) for k, v in bn_statistics(model).items()}
    return SmallInputState(max_pixels=MAX_PIXELS, state=stats, notes={"test": True})


def test_apply_copies_the_statistics_and_leaves_the_model_alone():
    model = _model()
    small = _shifted_stats(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = small.apply(model)
    for name, value in small.state.items():
        assert torch.equal(copy.get_buffer(name), value)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert not torch.allclose(model(x), copy(x))


def test_weights_ride_along_and_describe_themselves():
    model, tuned = _model(), _model(seed=2)
    stats_only = _shifted_stats(model)
    with_weights = SmallInputState(max_pixels=MAX_PIXELS, state=float_state(tuned))
    assert not stats_only.has_weights and stats_only.describe() == "small-input BN statistics"
    assert with_weights.has_weights and with_weights.describe() == "small-input weights"
    before = float_state(model)
    copy = with_weights.apply(model)
    assert all(torch.equal(copy.state_dict()[k], v) for k, v in float_state(tuned).items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())   # the model is left alone
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.allclose(copy(x), tuned(x)) and not torch.allclose(copy(x), model(x))


def test_blended_is_the_weighted_mean_tensor_by_tensor():
    model, tuned = _model(), _model(seed=2)
    own, theirs = float_state(model), float_state(tuned)
    small = SmallInputState(max_pixels=MAX_PIXELS, state=theirs, notes={"from": "test"})
    half = small.blended(own, weight=0.5)
    assert half.max_pixels == MAX_PIXELS and half.notes == {"from": "test", "blend": 0.5}
    assert all(torch.allclose(half.state[k], (theirs[k] + own[k]) / 2) for k in theirs)
    assert all(torch.equal(small.blended(own, weight=1.0).state[k], theirs[k]) for k in theirs)
    with pytest.raises(ValueError, match="blend weight"):
        small.blended(own, weight=0.0)
    with pytest.raises(ValueError, match="no tensors"):
        small.blended({k: v for k, v in own.items() if not k.endswith("running_var")}, weight=0.5)


def test_a_state_without_every_bn_statistic_is_refused():
    model = _model()
    state = {k: v for k, v in float_state(model).items() if not k.endswith("running_var")}
    with pytest.raises(ValueError, match="segment small-input-stats"):
        SmallInputState(max_pixels=MAX_PIXELS, state=state).apply(model)


def test_the_earlier_statistics_only_entry_is_read(checkpoint):
    from segment.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    entry = ckpt.pop(CHECKPOINT_KEY)
    ckpt[LEGACY_KEY] = {"max_pixels": entry["max_pixels"], "stats": entry["state"], "notes": entry["notes"]}
    legacy = SmallInputState.from_checkpoint(ckpt)
    assert legacy.max_pixels == MAX_PIXELS and legacy.state.keys() == entry["state"].keys()


def test_statistics_of_another_model_are_refused():
    small = _shifted_stats(_model())
    other = build_model(get_preset("default").config)
    with pytest.raises(ValueError, match="segment small-input-stats"):
        small.apply(other)


def test_sized_model_chooses_by_pixels_and_follows_a_replaced_model():
    model = _model()
    sized = SizedModel(model=model, small=_shifted_stats(model))
    assert sized.for_input((200, 300)) is not model          # exactly max_pixels: small
    assert sized.for_input((200, 301)) is model
    assert sized.for_input((512, 1024)) is model
    assert sized.describe((200, 300)) == "small-input BN statistics" and sized.describe((512, 1024)) == ""
    first = sized.for_input((100, 100))
    assert sized.for_input((100, 100)) is first               # built once
    sized.model = _model(seed=1)
    replaced = sized.for_input((100, 100))
    assert replaced is not first
    assert torch.equal(replaced.get_buffer(next(iter(sized.small.state))),
                       next(iter(sized.small.state.values())))
    assert SizedModel(model=model, small=None).for_input((10, 10)) is model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = _model()
    ckpt = make_checkpoint(model=model, config=get_preset("small").config, classes=CITYSCAPES_CLASSES,
                           palette=CITYSCAPES_PALETTE, mean=MEAN, std=STD)
    ckpt[CHECKPOINT_KEY] = _shifted_stats(model).to_checkpoint()
    path = tmp_path_factory.mktemp("small_inputs") / "with_small.pt"
    save_checkpoint(path, ckpt)
    return path


def _eager(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    x = (image.astype(np.float32) / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    with torch.no_grad():
        return model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).argmax(1)[0].numpy()


def test_predictor_runs_small_shapes_with_their_statistics(checkpoint):
    from segment.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    plain = model_from_checkpoint(ckpt)
    small = SmallInputState.from_checkpoint(ckpt).apply(plain)
    predictor = Predictor.from_checkpoint(checkpoint, backend="torch", threads=1)
    image = calibration_images((128, 256), count=1)[0]      # 32768 pixels: a small input
    labels = predictor.predict(image, size="native").labels
    assert np.mean(labels == _eager(small, image)) >= 0.999
    assert np.mean(labels == _eager(plain, image)) < 0.99   # the model's own statistics would differ
    assert np.array_equal(predictor.reference_labels(image, "native"), _eager(small, image))
    # Exports, guard records and auto's choices are filed by the model a shape runs.
    assert predictor.key_for((128, 256)) != predictor.key
    assert predictor.key_for(SIZES["half"]) == predictor.key
    assert predictor.model_for(SIZES["half"]) is predictor.model


def test_checkpoint_without_statistics_runs_one_model(checkpoint):
    from segment.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    del ckpt[CHECKPOINT_KEY]
    assert SmallInputState.from_checkpoint(ckpt) is None
    predictor = Predictor(model=model_from_checkpoint(ckpt), classes=ckpt["classes"], palette=ckpt["palette"],
                          mean=MEAN, std=STD, threads=1)
    assert predictor.model_for((64, 64)) is predictor.model and predictor.key_for((64, 64)) == predictor.key


def test_predict_says_which_shapes_ran_with_them(checkpoint, tmp_path, capsys):
    from PIL import Image

    from segment.cli import main as segment_main

    (tmp_path / "in").mkdir()
    Image.fromarray(calibration_images((128, 256), count=1)[0]).save(tmp_path / "in" / "street.png")
    for size, small in (("native", True), ("half", False)):
        assert segment_main(["predict", str(tmp_path / "in"), "--out", str(tmp_path / size), "--checkpoint",
                             str(checkpoint), "--size", size, "--backend", "torch"]) == 0
        err = capsys.readouterr().err
        assert "the model ran at " in err
        assert ("with small-input BN statistics" in err) is small, err

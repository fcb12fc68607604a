"""Model input sizes (segment.sizes): the paper's frames, shape buckets, no stretching, one parser."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segment.errors import UserError
from segment.sizes import (
    ASPECTS,
    SIZES,
    RunPlan,
    bucket_for,
    bucket_shape,
    buckets,
    budget_of,
    fit_and_pad,
    fit_inside,
    parse_size,
    plan_run,
)

BUDGET = {name: h * w for name, (h, w) in SIZES.items()}


@pytest.mark.parametrize("budget", ["half", "full"])
def test_every_bucket_is_a_multiple_of_32_inside_the_turned_frame(budget):
    shapes = buckets(budget)
    assert list(shapes) == [f"{w}:{h}" for w, h in ASPECTS]
    assert len(set(shapes.values())) == len(ASPECTS)
    short, long = SIZES[budget]
    for name, (h, w) in shapes.items():
        wa, ha = map(int, name.split(":"))
        frame = (short, long) if wa >= ha else (long, short)
        assert h % 32 == 0 and w % 32 == 0, name
        assert h <= frame[0] and w <= frame[1], name
        # a photo of the bucket's own aspect ratio fills the frame on one side and the bucket
        # to within the rounding to 32 on the other
        vh, vw = fit_inside((ha * 1000, wa * 1000), (h, w))
        assert vh == frame[0] or vw == frame[1], (name, vh, vw)
        assert h - vh < 32 and w - vw < 32, (name, vh, vw)


@pytest.mark.parametrize("budget", ["half", "full"])
def test_bucket_is_the_smallest_multiple_of_32_holding_the_fitted_photo(budget):
    # Brute force: the fitted photo of each aspect ratio, and the smallest multiple-of-32 shape
    # that holds it.
    short, long = SIZES[budget]
    for wa, ha in ASPECTS:
        frame = (short, long) if wa >= ha else (long, short)
        scale = min(frame[0] / ha, frame[1] / wa)
        need = (ha * scale, wa * scale)
        smallest = min(((h, w) for h in range(32, long + 1, 32) for w in range(32, long + 1, 32)
                        if h >= need[0] - 0.5 and w >= need[1] - 0.5), key=lambda s: s[0] * s[1])
        assert bucket_shape(SIZES[budget], (wa, ha)) == smallest, (wa, ha)


def test_a_landscape_photo_runs_at_the_papers_height_and_a_portrait_at_its_width():
    for budget, (short, _) in SIZES.items():
        for wa, ha in ASPECTS:
            h, w = buckets(budget)[f"{wa}:{ha}"]
            assert (h if wa >= ha else w) == short, (budget, wa, ha)
    # a portrait photo is the landscape one turned: same shape, sides swapped
    for budget in SIZES:
        assert buckets(budget)["3:4"] == buckets(budget)["4:3"][::-1]
        assert buckets(budget)["9:16"] == buckets(budget)["16:9"][::-1]


def test_two_to_one_is_exactly_the_papers_inputs():
    assert buckets("half")["2:1"] == (512, 1024) and buckets("full")["2:1"] == (1024, 2048)
    for name, hw in SIZES.items():
        plan = plan_run(hw, name)
        assert plan.run_hw == hw and plan.valid_hw == hw and not plan.padded
        # Cityscapes' own frames and a 2:1 photo of any size
        assert plan_run((1024, 2048), name).run_hw == hw
        assert plan_run((300, 600), name) == RunPlan(run_hw=hw, valid_hw=hw, budget=name, aspect="2:1")


@pytest.mark.parametrize("image_hw, aspect, half, full", [
    ((3000, 4000), "4:3", (512, 704), (1024, 1376)),     # phone photo, landscape
    ((360, 480), "4:3", (512, 704), (1024, 1376)),       # CamVid
    ((1080, 1920), "16:9", (512, 928), (1024, 1824)),    # video frame
    ((4000, 3000), "3:4", (704, 512), (1376, 1024)),     # phone photo, portrait
    ((1920, 1080), "9:16", (928, 512), (1824, 1024)),    # phone video, portrait
    ((1024, 2048), "2:1", (512, 1024), (1024, 2048)),    # Cityscapes
    ((400, 4000), "2:1", (512, 1024), (1024, 2048)),     # panorama: clamps to the widest bucket
    ((4000, 400), "1:2", (1024, 512), (2048, 1024)),     # very tall: clamps to the tallest
    ((7, 9), "4:3", (512, 704), (1024, 1376)),           # tiny (9/7 = 1.29: nearest 4:3)
    ((1, 1), "1:1", (512, 512), (1024, 1024)),
])
def test_run_shape_per_aspect_ratio(image_hw, aspect, half, full):
    for budget, expected in (("half", half), ("full", full)):
        plan = plan_run(image_hw, budget)
        assert (plan.aspect, plan.run_hw, plan.budget) == (aspect, expected, budget)
        assert plan.run_hw == buckets(budget)[aspect]
        check_no_stretch(image_hw, plan)


def check_no_stretch(image_hw, plan):
    h, w = image_hw
    vh, vw = plan.valid_hw
    rh, rw = plan.run_hw
    assert 1 <= vh <= rh and 1 <= vw <= rw
    assert vh == rh or vw == rw  # as large as fits
    # the resized image has the photo's aspect ratio, to within one pixel of rounding
    if vh == rh:
        assert abs(vw - w * vh / h) <= 1.0 or vw == rw
    else:
        assert abs(vh - h * vw / w) <= 1.0


def test_no_stretch_over_many_shapes():
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 5000, 2))
        for budget in SIZES:
            plan = plan_run((h, w), budget)
            check_no_stretch((h, w), plan)
            assert plan.run_hw[0] * plan.run_hw[1] <= BUDGET[budget]
            # nearest aspect ratio in log distance (ties aside)
            dists = sorted(abs(math.log(w / h) - math.log(a / b)) for a, b in ASPECTS)
            wa, ha = map(int, plan.aspect.split(":"))
            assert abs(math.log(w / h) - math.log(wa / ha)) == pytest.approx(dists[0])


def test_native_and_explicit_sizes_are_kept():
    assert plan_run((333, 517), "native") == RunPlan(run_hw=(333, 517), valid_hw=(333, 517))
    plan = plan_run((3000, 4000), (768, 1536))  # the user asked for exactly this: stretched, no bucket
    assert plan == RunPlan(run_hw=(768, 1536), valid_hw=(768, 1536))
    assert budget_of((768, 1536)) is None and budget_of((512, 704)) == "half" and budget_of((1024, 1376)) == "full"
    with pytest.raises(UserError, match="half, full, native"):
        plan_run((10, 10), "quarter")


def test_fit_inside_rounding():
    assert fit_inside((360, 480), (512, 704)) == (512, 683)
    assert fit_inside((1080, 1920), (512, 928)) == (512, 910)
    assert fit_inside((1, 10000), (512, 1024)) == (1, 1024)  # never zero


def test_fit_and_pad_pads_bottom_right_with_the_mean_colour():
    image = np.full((30, 40, 3), 200, np.uint8)
    plan = RunPlan(run_hw=(64, 64), valid_hw=(48, 64), budget="half", aspect="4:3")
    out = fit_and_pad(image, plan, fill=(124, 116, 104))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out[:48] == 200).all()
    assert (out[48:] == [124, 116, 104]).all()


def test_model_input_is_resized_bilinearly_both_ways():
    import cv2

    from segment.sizes import MODEL_INPUT_INTERPOLATION

    assert MODEL_INPUT_INTERPOLATION == cv2.INTER_LINEAR
    image = np.random.default_rng(1).integers(0, 256, (700, 1000, 3), dtype=np.uint8)
    plan = RunPlan(run_hw=(304, 416), valid_hw=(291, 416), budget="half", aspect="4:3")
    out = fit_and_pad(image, plan, fill=(0, 0, 0))
    assert np.array_equal(out[:291], cv2.resize(image, (416, 291), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("text, expected", [
    ("half", "half"), ("full", "full"), ("native", "native"), ("HALF", "half"), (" full ", "full"),
    ("768x1536", (768, 1536)), ("768X1536", (768, 1536)), ("1x1", (1, 1)),
])
def test_parser_accepts(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "quarter", "512", "512x", "x512", "0x512", "-32x64", "axb", "1x2x3", "1.5x2"])
def test_parser_refuses_junk_with_a_clear_message(text):
    with pytest.raises(UserError) as exc:
        parse_size(text)
    assert getattr(exc.value, "is_user_error", False)
    assert "half, full, native or HxW" in str(exc.value) and repr(text.strip()) in str(exc.value)


def test_parser_options():
    with pytest.raises(UserError, match="half, full or HxW"):
        parse_size("native", native=False)
    with pytest.raises(UserError, match="at least 32"):
        parse_size("16x64", minimum=32)
    with pytest.raises(UserError, match="^--size 'big': mine$"):
        parse_size("big", error="--size 'big': mine")
    assert parse_size("32x64", minimum=32) == (32, 64)


# -- through the one inference path ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    from segment.predict import Predictor

    torch.manual_seed(0)
    return Predictor.from_preset("small", threads=1, calibrate_bn=False)


@pytest.mark.parametrize("image_hw", [(37, 91), (101, 77), (360, 480), (250, 31)])
def test_labels_at_the_photos_size_for_odd_sizes(small, image_hw):
    image = np.random.default_rng(1).integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    for size in ("half", "native"):
        p = small.predict(image, size=size)
        assert p.labels.shape == image_hw and p.labels.dtype == np.uint8
    p = small.predict(image, size="half")
    plan = plan_run(image_hw, "half")
    assert p.input_size == plan.run_hw and p.valid_size == plan.valid_hw and p.bucket == plan.aspect
    assert p.size == "half" and p.describe_size().startswith(f"{plan.run_hw[0]}x{plan.run_hw[1]} (half, ")


class _Painter(torch.nn.Module):
    """A stand-in model: class 1 where the (normalized) input is the padding colour, else class 0.

    Its labels show where the padding went, so the test sees whether any padding
    reaches the labels that come back.
    """

    def forward(self, x):
        pad = (x.abs().amax(1, keepdim=True) < 0.05).float()
        return torch.cat([1 - pad, pad], 1) * 10


def test_padding_does_not_leak_into_the_labels(small):
    from segment.predict import Predictor

    p = Predictor(model=_Painter(), classes=["photo", "padding"], palette=[[0, 0, 0], [255, 255, 255]],
                  mean=small.mean_unit, std=small.std_unit, backend="torch", threads=1)
    p.build = lambda spec, size: _PlainBackend(p.model, p.mean, p.std)
    # 4:1, in the 2:1 bucket: half of the model input is padding. (The image ends on a row
    # that is a multiple of 8, so the stand-in's 1/8-resolution logits do not blur across it.)
    image = np.full((128, 512, 3), 255, np.uint8)
    plan = plan_run(image.shape[:2], "half")
    assert plan.padded and plan.run_hw == (512, 1024) and plan.valid_hw == (256, 1024)
    x = p.prepare(image, plan)[0]
    assert (x[plan.valid_hw[0]:] == [124, 116, 104]).all()  # the padding is really there...
    for labels in (p.predict(image, size="half").labels, p.reference_labels(image, "half")):
        assert labels.shape == (128, 512)
        assert (labels == 0).all()  # ...and none of it comes back


class _PlainBackend:
    name, precision = "torch", "fp32"

    def __init__(self, model, mean, std):
        self.model, self.mean, self.std = model, mean, std

    def run(self, x):
        x = ((x.astype(np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2)
        out = self.model(torch.from_numpy(np.ascontiguousarray(x)))
        return torch.nn.functional.avg_pool2d(out, 8)[0]  # the backends' 1/8-resolution logits (C, H/8, W/8)


def test_evaluation_uses_the_same_sizes_and_scores_without_the_padding(small):
    """``segment eval --size half`` and the trainer's eval_size: the image padded into its bucket as
    ``predict`` pads it, the logits cropped back before they are scored at the label's size."""
    from data.transforms import eval_transform
    from train.engine import scoring_logits

    image = np.random.default_rng(2).integers(0, 256, (90, 120, 3), dtype=np.uint8)  # 4:3
    mask = np.zeros((90, 120), np.uint8)
    plan = plan_run((90, 120), "half")
    out = eval_transform(size="half")(image=image, mask=mask)
    x, m = out["image"], out["mask"]
    assert tuple(x.shape) == (3, *plan.run_hw) and tuple(m.shape) == (90, 120)
    vh, vw = plan.valid_hw
    assert plan.padded and vh == plan.run_hw[0]
    assert x[:, :, vw:].abs().max() < 0.01  # the mean colour: ~0 after normalization
    # The same input the predictor builds (up to bilinear vs area resampling: here both upscale).
    ours = small.prepare(image, plan)[0].astype(np.float32)
    theirs = x.numpy().transpose(1, 2, 0) * small.std + small.mean
    assert np.abs(ours - theirs).max() < 1.0
    # Scoring crops the padding: a "model" that marks the padding as class 1 scores none of it.
    logits = torch.stack([(x.abs().amax(0) >= 0.05).float(), (x.abs().amax(0) < 0.05).float()])[None]
    scored = scoring_logits(logits, (90, 120), "half").argmax(1)
    assert tuple(scored.shape) == (1, 90, 120) and int(scored.sum()) == 0
    assert int(scoring_logits(logits, (90, 120), "native").argmax(1).sum()) > 0  # (without the crop it would)
    # native and an explicit HxW are as before: no padding, nothing cropped
    assert tuple(eval_transform(size="native")(image=image, mask=mask)["image"].shape) == (3, 90, 120)
    assert tuple(eval_transform(size=(64, 128))(image=image, mask=mask)["image"].shape) == (3, 64, 128)

"""Model tests, one base class reused across every preset (as segmentation_models_pytorch does)."""

import pytest
import torch

from segment import create_model, get_preset, list_presets
from segment.backbones import MobileNetV2Backbone, MobileNetV3Backbone
from segment.config import ModelConfig
from segment.model import build_model

PRESET_NAMES = [p.name for p in list_presets()]


@pytest.fixture(scope="module", params=PRESET_NAMES)
def preset_model(request):
    preset = get_preset(request.param)
    return preset, build_model(preset.config).eval()


class TestEveryPreset:
    @pytest.mark.parametrize("hw", [(64, 64), (33, 47), (100, 150), (17, 23)])
    def test_logits_at_input_size(self, preset_model, hw):
        preset, model = preset_model
        with torch.no_grad():
            out = model(torch.randn(1, 3, *hw))
        assert out.shape == (1, preset.config.num_classes, *hw)
        assert torch.isfinite(out).all()

    def test_declared_outputs_match_tensors(self, preset_model):
        preset, model = preset_model
        x = torch.randn(1, 3, 128, 256)
        with torch.no_grad():
            feats = model.backbone(x)
        for name, spec in model.backbone.output_specs.items():
            assert feats[name].shape[1] == spec.channels, name
            assert feats[name].shape[-2:] == (128 // spec.stride, 256 // spec.stride), name
        assert model.backbone.output_specs["low"].stride == 8
        assert model.backbone.output_specs["high"].stride == preset.config.output_stride


def test_default_model_is_table7_row8():
    cfg = get_preset("default").config
    assert (cfg.backbone, cfg.rf2, cfg.head, cfg.head_channels, cfg.output_stride) == (
        "mobilenet_v3_large", True, "lraspp", 128, 16)
    assert get_preset("small").paper.row == "T7-11"
    assert get_preset("T7-8").name == get_preset("default").name


def test_unknown_preset_names_choices():
    with pytest.raises(ValueError, match="unknown model preset 'nope'.*default"):
        get_preset("nope")


def test_full_resolution_input():
    model = create_model("default").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 1024, 2048))
    assert out.shape == (1, 19, 1024, 2048)


@pytest.mark.parametrize("name", ["default", "mnv3-rf2-raspp-f256", "mnv2x035-rf2-lraspp-f128", "small"])
def test_gradients_reach_every_parameter(name):
    model = create_model(name, num_classes=4).train()
    # batch 2: R-ASPP's image-pooling BN sees one value per channel per image.
    out = model(torch.randn(2, 3, 96, 96))
    loss = torch.nn.functional.cross_entropy(out, torch.randint(0, 4, (2, 96, 96)))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for p in model.parameters())


def test_rf2_halves_the_whole_last_stage():
    full = MobileNetV3Backbone(variant="large", rf2=False)
    rf2 = MobileNetV3Backbone(variant="large", rf2=True)
    first_full, first_rf2 = full.blocks[12].block, rf2.blocks[12].block
    # The first block's expansion is halved too (672 -> 336), unlike torchvision's reduced_tail.
    assert first_full[0].out_channels == 672 and first_rf2[0].out_channels == 336
    assert [b.out_channels for b in rf2.blocks[12:]] == [80, 80, 80]
    assert rf2.output_specs["high"].channels == 480 and full.output_specs["high"].channels == 960
    small = MobileNetV3Backbone(variant="small", rf2=True)
    assert small.blocks[8].block[0].out_channels == 144
    assert small.output_specs["high"].channels == 288


def _slim_rule(strides, output_stride):
    """slim mobilenet_base, transcribed: (stride, rate) per block, the stem's stride 2 counted."""
    current, rate, out = 2, 1, []
    for s in strides:
        if current == output_stride:
            layer_stride, layer_rate = 1, rate
            rate *= s
        else:
            layer_stride, layer_rate = s, 1
            current *= s
        out.append((layer_stride, layer_rate))
    return out


# Nominal strides (the papers' tables) and (in, out) channels at RF2, width 1.
_NOMINAL = {
    "mobilenet_v3_large": [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1],
    "mobilenet_v3_small": [2, 2, 1, 2, 1, 1, 1, 1, 2, 1, 1],
    "mobilenet_v2": [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1],
}


@pytest.mark.parametrize("backbone", sorted(_NOMINAL))
@pytest.mark.parametrize("output_stride", [16, 32])
def test_block_geometry_follows_slim_rule(backbone, output_stride):
    model = build_model(ModelConfig(backbone=backbone, output_stride=output_stride))
    built = model.backbone.geometry()
    expected = _slim_rule(_NOMINAL[backbone], output_stride)
    assert [(g.stride, g.rate) for g in built] == expected
    # slim's expanded_conv adds the residual wherever the stride is 1 and the depth is kept.
    blocks = model.backbone.blocks
    for g, block in zip(built, blocks):
        convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.kernel_size == (1, 1)]
        same_depth = convs[-1].out_channels == _block_input_channels(model.backbone, block)
        assert g.residual == (g.stride == 1 and same_depth)


def _block_input_channels(backbone, block):
    first = next(m for m in block.modules() if isinstance(m, torch.nn.Conv2d))
    return first.in_channels


def test_first_atrous_block_has_rate_1_and_the_rest_rate_2():
    large = build_model(ModelConfig()).backbone.geometry()
    assert [(g.stride, g.rate) for g in large[12:]] == [(1, 1), (1, 2), (1, 2)]
    small = build_model(ModelConfig(backbone="mobilenet_v3_small")).backbone.geometry()
    assert [(g.stride, g.rate) for g in small[8:]] == [(1, 1), (1, 2), (1, 2)]
    v2 = build_model(ModelConfig(backbone="mobilenet_v2")).backbone.geometry()
    assert [(g.stride, g.rate) for g in v2[13:]] == [(1, 1), (1, 2), (1, 2), (1, 2)]
    # torchvision's convention stays buildable by name.
    tv = build_model(ModelConfig(first_atrous_rate=2, first_atrous_residual=False)).backbone.geometry()
    assert [(g.stride, g.rate) for g in tv[12:]] == [(1, 2), (1, 2), (1, 2)]


def test_small_rf2_first_atrous_block_adds_its_residual():
    backbone = build_model(ModelConfig(backbone="mobilenet_v3_small")).backbone.eval()
    block = backbone.blocks[8]  # 48 -> 48 channels at RF2, stride 2 removed at OS 16
    assert block.use_res_connect
    x = torch.randn(1, 48, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.block(x) + x)
    no_residual = build_model(ModelConfig(backbone="mobilenet_v3_small", first_atrous_residual=False)).backbone
    assert not no_residual.blocks[8].use_res_connect


def test_batchnorm_follows_the_reference():
    for backbone in sorted(_NOMINAL):
        model = build_model(ModelConfig(backbone=backbone))
        backbone_bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        head_bns = [m for m in model.head.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        # TF decay 0.997 / 0.9997 is PyTorch momentum 0.003 / 0.0003.
        assert {(round(m.momentum, 6), m.eps) for m in backbone_bns} == {(0.003, 1e-3)}
        assert {(round(m.momentum, 6), m.eps) for m in head_bns} == {(0.0003, 1e-5)}


def test_low_level_feature_is_the_depthwise_output():
    large = MobileNetV3Backbone(variant="large").eval()
    assert large.output_specs["low"].channels == 120  # third 40-channel block, expansion 120
    small = MobileNetV3Backbone(variant="small")
    assert small.output_specs["low"].channels == 88
    v2 = MobileNetV2Backbone()
    assert v2.output_specs["low"].channels == 192  # last 32-channel block, expansion 6 x 32

    # The tap equals the block's depthwise conv + BN + activation output.
    block = large.blocks[large.low_index]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = large.stem(x)
        for b in large.blocks[: large.low_index]:
            y = b(y)
        expected = block.block[1](block.block[0](y))
        assert torch.equal(large(x)["low"], expected)


def test_width_multiplier_scales_channels():
    half = build_model(ModelConfig(backbone="mobilenet_v3_large", width_mult=0.5))
    assert half.backbone.output_specs["high"].channels < 480


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="output_stride"):
        build_model(ModelConfig(output_stride=8))
    with pytest.raises(ValueError, match="head"):
        build_model(ModelConfig(head="aspp"))
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({"backbone": "mobilenet_v3_large", "colour": 1})


def test_config_roundtrip():
    cfg = get_preset("mnv3small-os32").config
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg

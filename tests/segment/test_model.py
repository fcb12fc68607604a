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


def test_atrous_last_stage():
    os16 = MobileNetV3Backbone(variant="large", output_stride=16)
    os32 = MobileNetV3Backbone(variant="large", output_stride=32)
    dw16 = [b.block[1][0] for b in os16.blocks[12:]]
    dw32 = [b.block[1][0] for b in os32.blocks[12:]]
    assert [c.dilation for c in dw16] == [(2, 2)] * 3 and [c.stride for c in dw16] == [(1, 1)] * 3
    assert [c.dilation for c in dw32] == [(1, 1)] * 3 and dw32[0].stride == (2, 2)


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

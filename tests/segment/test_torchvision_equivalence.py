"""Our MobileNetV3-Large blocks are torchvision's: same weights give the same features."""

import torch
from torchvision.models import mobilenet_v3_large

from segment.backbones import MobileNetV3Backbone


def _tv_to_ours(tv_state: dict, n_blocks: int) -> dict:
    ours = {}
    for key, value in tv_state.items():
        _, index, rest = key.split(".", 2)
        i = int(index)
        if i == 0:
            ours[f"stem.{rest}"] = value
        elif i <= n_blocks:
            ours[f"blocks.{i - 1}.{rest}"] = value
        else:
            ours[f"last_conv.{rest}"] = value
    return ours


def test_large_os16_without_rf2_matches_torchvision_dilated():
    """torchvision's atrous convention (the first atrous block dilated, no residual) and its BN
    momentum stay buildable: with them our backbone is torchvision's."""
    tv = mobilenet_v3_large(weights=None, dilated=True).eval()
    ours = MobileNetV3Backbone(variant="large", output_stride=16, rf2=False, first_atrous_rate=2,
                               first_atrous_residual=False, bn_momentum=0.01).eval()
    tv_features = {k: v for k, v in tv.state_dict().items() if k.startswith("features.")}
    # Randomise BN statistics so the comparison exercises them too.
    for k, v in tv_features.items():
        if k.endswith("running_var"):
            v.uniform_(0.5, 2.0)
        elif k.endswith("running_mean"):
            v.normal_(0, 0.1)
    result = ours.load_state_dict(_tv_to_ours(tv_features, len(ours.blocks)), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, 160, 224)
    with torch.no_grad():
        expected = tv.features(x)
        got = ours(x)["high"]
    assert got.shape == expected.shape == (2, 960, 10, 14)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)

import pytest
import torch

from heads import LRASPP, RASPP
from heads.lraspp import pool_window


def _head(**kw):
    return LRASPP(low_channels=24, high_channels=40, num_classes=5, inter_channels=16, **kw).eval()


def test_window_is_global_at_the_training_crop():
    # 769 / 16 -> a 49x49 map: the 49x49 window covers it exactly (global pooling).
    assert pool_window((49, 49), (49, 49)) == (49, 49)


@pytest.mark.parametrize("hw", [(1, 1), (4, 4), (7, 30), (64, 128), (49, 200)])
def test_window_shrinks_to_small_maps(hw):
    kh, kw = pool_window(hw, (49, 49))
    assert kh == min(49, hw[0]) and kw == min(49, hw[1])


def test_at_training_crop_gate_equals_global_pooling():
    head = _head()
    low, high = torch.randn(1, 24, 97, 97), torch.randn(1, 40, 49, 49)
    gate = head.scale(high.mean(dim=(2, 3), keepdim=True))
    expected = head.low_classifier(low) + head.high_classifier(
        torch.nn.functional.interpolate(head.cbr(high) * gate, size=(97, 97), mode="bilinear", align_corners=False)
    )
    torch.testing.assert_close(head(low, high), expected)


def test_large_map_uses_local_windows():
    # At 1024x2048 (64x128 map) the gate varies along W: pooling is not global there.
    head = _head()
    high = torch.randn(1, 40, 64, 128)
    high[..., 64:] += 3.0  # right half differs
    pooled = torch.nn.functional.avg_pool2d(high, kernel_size=(49, 49), stride=(16, 20))
    assert pooled.shape[-2:] == (1, 4)
    out = head(torch.randn(1, 24, 128, 256), high)
    assert out.shape == (1, 5, 128, 256)


def test_stride_and_window_are_configurable():
    head = _head(window=(5, 7), stride=(2, 3))
    assert head.window == (5, 7) and head.stride == (2, 3)
    assert head(torch.randn(2, 24, 20, 20), torch.randn(2, 40, 10, 10)).shape == (2, 5, 20, 20)


def test_raspp_shapes_and_ignores_low():
    head = RASPP(low_channels=24, high_channels=40, num_classes=5, inter_channels=16).eval()
    high = torch.randn(1, 40, 9, 13)
    a = head(torch.randn(1, 24, 18, 26), high)
    b = head(torch.zeros(1, 24, 18, 26), high)
    assert a.shape == (1, 5, 9, 13)
    torch.testing.assert_close(a, b)

import pytest
import torch

from heads import LRASPP, RASPP
from heads.lraspp import pool_grid, pool_window


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


def test_gate_is_a_biased_conv_with_hard_sigmoid():
    # The reference's SE-style image pooling: 1x1 conv, normalizer_fn=None (so a bias),
    # q_sigmoid = relu6(x + 3) / 6 with image_se_uses_qsigmoid=1.
    head = _head()
    conv = head.scale[0]
    assert conv.bias is not None
    x = torch.randn(1, 40, 2, 5) * 4
    expected = torch.clamp(torch.nn.functional.conv2d(x, conv.weight, conv.bias) + 3, 0, 6) / 6
    torch.testing.assert_close(head.scale(x), expected)
    paper = _head(gate="sigmoid", gate_bias=False)
    assert paper.scale[0].bias is None and isinstance(paper.scale[1], torch.nn.Sigmoid)
    with pytest.raises(ValueError, match="gate"):
        _head(gate="relu")


# (feature map, window, stride) -> windows per axis, as the reference tiles them.
@pytest.mark.parametrize("feature_hw, window, stride, counts", [
    ((65, 129), (49, 49), (16, 20), (2, 5)),  # OS 16 at 1025x2049: the reference's 2x5 windows
    ((33, 65), (25, 25), (4, 5), (3, 9)),  # OS 32 at 1025x2049: release flags, 3x9 windows
    ((49, 49), (49, 49), (16, 20), (1, 1)),  # the 769 training crop: global pooling
])
def test_reference_sizes_keep_the_reference_windows(feature_hw, window, stride, counts):
    grid = pool_grid(feature_hw, window, stride)
    assert (len(grid[0]), len(grid[1])) == counts
    # No window is clipped: each has the full size and the last ends on the edge.
    for axis, k, size in zip(grid, window, feature_hw):
        assert all(end - start == k for start, end in axis) and axis[-1][1] == size
    head = _head(window=window, stride=stride)
    pooled = torch.nn.functional.avg_pool2d(torch.randn(1, 40, *feature_hw), window, stride, ceil_mode=True)
    assert pooled.shape[-2:] == counts
    assert head.cover


@pytest.mark.parametrize("feature_hw", [(64, 128), (32, 64), (47, 61), (23, 30), (78, 104), (17, 33)])
@pytest.mark.parametrize("window, stride", [((49, 49), (16, 20)), ((25, 25), (4, 5)), ((20, 20), (16, 20))])
def test_every_feature_cell_reaches_the_gate(feature_hw, window, stride):
    """At sizes the windows do not tile, every cell still lies in a window: changing any one
    cell changes the gate (checked in the real forward, at the map's last row and column)."""
    grid = pool_grid(feature_hw, window, stride)
    for axis, size in zip(grid, feature_hw):
        covered = set()
        for start, end in axis:
            covered.update(range(start, end))
        assert covered == set(range(size))
    head = _head(window=window, stride=stride)
    high = torch.randn(1, 40, *feature_hw)
    kernel = pool_window(feature_hw, window)
    base = torch.nn.functional.avg_pool2d(high, kernel, stride, ceil_mode=head.cover)
    for cell in [(-1, -1), (-1, 0), (0, -1)]:
        changed = high.clone()
        changed[..., cell[0], cell[1]] += 10.0
        pooled = torch.nn.functional.avg_pool2d(changed, kernel, stride, ceil_mode=head.cover)
        assert not torch.equal(pooled, base), cell


def test_edge_windows_average_only_the_cells_they_hold():
    # 64 rows, window 49, stride 16: the second window holds rows 16..63 (48 rows).
    high = torch.zeros(1, 1, 64, 49)
    high[:, :, 16:, :] = 1.0
    high[:, :, 63, :] = 49.0  # the last row
    pooled = torch.nn.functional.avg_pool2d(high, (49, 49), (16, 20), ceil_mode=True)
    assert pooled.shape[-2:] == (2, 1)
    assert pooled[0, 0, 1, 0].item() == pytest.approx((47 + 49) / 48)

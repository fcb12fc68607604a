"""Losses: cross-entropy and segmentation-models-pytorch's, all ignoring label 255."""

from __future__ import annotations

import pytest
import torch

from train.losses import LOSSES, build_loss


@pytest.mark.parametrize("name", LOSSES)
def test_loss_ignores_255_and_has_gradients(name):
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 8, 8, requires_grad=True)
    target = torch.randint(0, 5, (2, 8, 8))
    target[:, :4] = 255
    loss = build_loss(name)(logits, target)
    assert torch.isfinite(loss)
    loss.backward()
    # Ignored pixels get no gradient; labelled ones do.
    assert logits.grad[:, :, :4].abs().max() == 0
    assert logits.grad[:, :, 4:].abs().max() > 0


def test_class_weights_change_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(1, 3, 4, 4), torch.randint(0, 3, (1, 4, 4))
    plain = build_loss("ce")(logits, target)
    weighted = build_loss("ce", class_weights=torch.tensor([1.0, 5.0, 0.1]))(logits, target)
    assert not torch.isclose(plain, weighted)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        build_loss("l2")

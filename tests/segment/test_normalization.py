"""segment.normalization: the one copy of the ImageNet statistics, shared by training and inference."""

import numpy as np
import torch
from torchvision.models import MobileNet_V3_Large_Weights


def test_values_are_torchvisions_imagenet_statistics():
    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    reference = MobileNet_V3_Large_Weights.IMAGENET1K_V1.transforms()  # builds no model, downloads nothing
    assert np.allclose(IMAGENET_MEAN, reference.mean) and np.allclose(IMAGENET_STD, reference.std)


def test_training_pipeline_normalizes_with_them():
    from data.transforms import eval_transform
    from segment.normalization import IMAGENET_MEAN, IMAGENET_STD

    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 255, 0, 128
    out = eval_transform()(image=image, mask=np.zeros((2, 2), np.uint8))["image"]
    expected = [(1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
                (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected), atol=1e-5, rtol=0)


def test_no_other_module_spells_the_numbers():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spelled = sorted(str(p.relative_to(root)) for pkg in ("heads", "segment", "data", "train", "serve")
                     for p in (root / pkg).rglob("*.py") if "0.485" in p.read_text(encoding="utf-8"))
    assert spelled == ["segment/normalization.py"]

"""Labels from low-resolution logits: exact against interpolate + argmax, and polite to other thread pools."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from threadpoolctl import ThreadpoolController

import segment.postprocess as postprocess
from segment.postprocess import upsample_argmax


def smooth_logits(classes, h, w, *, cells, seed):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, classes, cells[0], cells[1], generator=g) * 3
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("low,out", [((64, 128), (512, 1024)), ((9, 13), (69, 101)), ((16, 16), (16, 16)),
                                     ((20, 30), (11, 17)), ((1, 5), (8, 40))])
def test_upsample_argmax_equals_interpolate_then_argmax(low, out):
    logits = smooth_logits(19, *low, cells=(max(1, low[0] // 4), max(1, low[1] // 4)), seed=1)
    logits += 0.2 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))  # many class boundaries
    expected = F.interpolate(logits[None], size=out, mode="bilinear", align_corners=False)[0].argmax(0).numpy()
    got = upsample_argmax(logits.numpy(), out)
    assert got.dtype == np.uint8 and got.shape == out
    # Exact but for float-rounding ties; with random logits there are none to speak of.
    assert np.mean(got == expected) > 0.9999


def test_upsample_argmax_uniform_regions_take_the_shortcut():
    logits = torch.zeros(3, 8, 8)
    logits[1] = 1.0  # class 1 everywhere
    assert (upsample_argmax(logits, (64, 64)) == 1).all()


def _numpy_blas() -> set[str]:
    """The BLAS libraries numpy itself loads (others, e.g. OpenCV's own OpenBLAS, may be loaded later)."""
    import subprocess
    import sys

    code = ("import json, numpy; from threadpoolctl import ThreadpoolController; "
            "print(json.dumps([l['filepath'] for l in ThreadpoolController().info() if l['user_api'] == 'blas']))")
    return set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))


def _blas_threads(paths: set[str]) -> list[int]:
    return [lib["num_threads"] for lib in ThreadpoolController().info() if lib["filepath"] in paths]


def test_upsample_argmax_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    # OpenBLAS workers busy-wait after each product; on a 2-core machine they took the CPU
    # from the next request's network (OpenVINO 58 ms -> 104 ms). Inside: one BLAS thread.
    paths = _numpy_blas()
    before = _blas_threads(paths)
    if not before:
        pytest.skip("numpy here is not linked to a BLAS that threadpoolctl sees")
    seen = {}
    real = postprocess._upsample_argmax

    def spy(logits, size):
        seen["blas"], seen["torch"] = _blas_threads(paths), torch.get_num_threads()
        return real(logits, size)

    monkeypatch.setattr(postprocess, "_upsample_argmax", spy)
    torch_threads = torch.get_num_threads()
    labels = upsample_argmax(smooth_logits(19, 16, 32, cells=(4, 8), seed=3).numpy(), (128, 256))
    assert labels.shape == (128, 256)
    assert seen["blas"] and all(n == 1 for n in seen["blas"]) and seen["torch"] == 1
    assert _blas_threads(paths) == before and torch.get_num_threads() == torch_threads


def test_upsample_argmax_warns_nothing_on_repeat_calls():
    # The per-size geometry is cached read-only; nothing may hand it to torch as if writable.
    import warnings

    logits = smooth_logits(19, 32, 64, cells=(8, 16), seed=3).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = upsample_argmax(logits, (256, 512))
        assert np.array_equal(upsample_argmax(logits, (256, 512)), first)

"""Labels from low-resolution logits: bilinear upsample + argmax, without the big tensor.

The model's last step resizes 19 channels of logits from 1/8 to the input size
(``F.interpolate(bilinear, align_corners=False)``) and the labels are their
argmax. At 1024x2048 that tensor is 160 MB of float32, written once and read
once: on a 2-core CPU it costs more than half the network.

Shortcut, exact up to float rounding: a bilinear sample is a convex
combination of its 4 source pixels. If those 4 pixels share one argmax ``c``,
then ``l_c >= l_k`` holds at each of them, so it holds for any convex
combination too, and the upsampled pixel's argmax is ``c``. Only pixels whose
4 sources disagree (class boundaries, typically a few percent of the image)
need the full 19-channel interpolation.
"""

from __future__ import annotations

import numpy as np
import torch


def _source_coords(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's bilinear (align_corners=False) sources for each output index: i0, i1, weight of i1."""
    scale = in_len / out_len
    src = (np.arange(out_len, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_len - 1)
    i1 = np.minimum(i0 + 1, in_len - 1)
    lam = (src - i0).astype(np.float32)
    return i0, i1, lam


def _groups(i0: np.ndarray, lam: np.ndarray, in_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output indices grouped by source cell, padded to one width.

    Returns counts (in_len,), index (in_len, G) and weight (in_len, G); padding
    repeats a group's last member, so it recomputes (and rewrites) the same
    pixel. Groups of cells no output falls on are left empty (count 0).
    """
    counts = np.bincount(i0, minlength=in_len)
    width = max(int(counts.max()), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offsets = np.minimum(np.arange(width)[None, :], np.maximum(counts[:, None] - 1, 0))
    index = np.minimum(starts[:, None] + offsets, len(i0) - 1)
    return counts, index, lam[index]


def upsample_argmax(logits: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """argmax over channels of ``logits`` (C, h, w) resized bilinearly to ``size`` (H, W): uint8 (H, W).

    Equals ``F.interpolate(logits[None], size, mode="bilinear", align_corners=False)[0].argmax(0)``
    except where two classes tie to float rounding.
    """
    t = torch.as_tensor(logits)
    if t.dtype != torch.float32:
        t = t.float()
    c, h, w = t.shape
    out_h, out_w = int(size[0]), int(size[1])
    if c > 255:
        raise ValueError(f"{c} classes do not fit uint8 labels")
    hwc = t.permute(1, 2, 0).contiguous()  # (h, w, C): one contiguous C-vector per source pixel
    low = hwc.argmax(2).to(torch.uint8).numpy()
    y0, y1, ly = _source_coords(out_h, h)
    x0, x1, lx = _source_coords(out_w, w)
    count_y, rows, wy = _groups(y0, ly, h)
    count_x, cols, wx = _groups(x0, lx, w)

    # y0/x0 are sorted, so repeating each source label by its group size is the nearest-source map.
    labels = np.repeat(np.repeat(low, count_y, axis=0), count_x, axis=1)

    # A source cell (i, j) spans pixels i..i+1 and j..j+1, clamped at the border.
    i1 = np.minimum(np.arange(h) + 1, h - 1)
    j1 = np.minimum(np.arange(w) + 1, w - 1)
    mixed = (low != low[i1]) | (low != low[:, j1]) | (low != low[i1][:, j1])
    mixed &= (count_y[:, None] > 0) & (count_x[None, :] > 0)
    ci, cj = np.nonzero(mixed)
    if ci.size:
        ti, tj = torch.from_numpy(ci), torch.from_numpy(cj)
        ti1, tj1 = torch.from_numpy(i1[ci]), torch.from_numpy(j1[cj])
        fx = torch.from_numpy(wx[cj])[:, :, None]  # (M, Gx, 1)
        fy = torch.from_numpy(wy[ci])[:, :, None, None]  # (M, Gy, 1, 1)
        # Rows first within each source row, then across rows: torch's kernel's association.
        top = hwc[ti, tj][:, None, :] * (1 - fx) + hwc[ti, tj1][:, None, :] * fx  # (M, Gx, C)
        bottom = hwc[ti1, tj][:, None, :] * (1 - fx) + hwc[ti1, tj1][:, None, :] * fx
        exact = (top[:, None] * (1 - fy) + bottom[:, None] * fy).argmax(3).to(torch.uint8).numpy()  # (M, Gy, Gx)
        labels[rows[ci][:, :, None], cols[cj][:, None, :]] = exact
    return labels

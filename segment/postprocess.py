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

import functools

import numpy as np
import torch


def _padded_coords(out_len: int, in_len: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output index: its source cell in the edge-padded input (cell k spans padded pixels k, k+1)
    and the weight of the cell's second pixel.

    torch (align_corners=False) samples at ``(i + 0.5) * in/out - 0.5`` and clamps below 0 and
    above ``in - 1``. With the input padded by one replicated pixel on each side, the same
    sample is ``+1`` without any clamping: interpolating between two copies of the border
    pixel gives the border pixel. Every cell then holds about in/out output pixels (8 for the
    model's x8 resize), with no ragged border groups.
    """
    src = (np.arange(out_len, dtype=np.float64) + 0.5) * (in_len / out_len) - 0.5 + 1.0
    src = np.clip(src, 0.0, in_len + 1.0)
    cell = np.minimum(np.floor(src).astype(np.int64), in_len)
    return cell, (src - cell).astype(np.float32)


def _groups(cell: np.ndarray, lam: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output indices grouped by cell, padded to one width G.

    Returns counts (cells,), index (cells, G) and weight (cells, G); padding repeats a
    group's last member, so it recomputes (and rewrites) the same pixel.
    """
    counts = np.bincount(cell, minlength=cells)
    width = max(int(counts.max()), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offsets = np.minimum(np.arange(width)[None, :], np.maximum(counts[:, None] - 1, 0))
    index = np.minimum(starts[:, None] + offsets, len(cell) - 1)
    return counts, index, lam[index]


@functools.lru_cache(maxsize=64)  # per axis length: the shape buckets of both budgets (segment.sizes) fit
def _geometry(out_len: int, in_len: int):
    """Per axis: the counts and indices of ``_groups``, the distinct weight patterns
    (``np.unique(weights, axis=0, return_inverse=True)``) and the regular run of cells.
    Depends on the sizes only: computed once per size (~1 ms a request at 1024x2048)."""
    cell, lam = _padded_coords(out_len, in_len)
    counts, index, weights = _groups(cell, lam, in_len + 1)
    patterns = np.unique(weights, axis=0, return_inverse=True)
    for array in (counts, index, *patterns):
        array.flags.writeable = False  # shared by every later call
    return counts, index, patterns, _regular_run(counts, index)


def _regular_run(counts: np.ndarray, index: np.ndarray) -> tuple[int, int, int]:
    """(first cell, end cell, first output index) of the longest run of consecutive cells that each
    hold the full group width: there, cell k's outputs are ``first + G*(k - first cell)`` onwards, so
    the label image reshaped to (cells, G) blocks addresses them without index arrays (for the x8
    resize: every cell but the first and last)."""
    full = np.concatenate([[False], counts == index.shape[1], [False]])
    edges = np.flatnonzero(full[1:] != full[:-1]).reshape(-1, 2)  # [start, end) of each run of full cells
    if not len(edges):
        return 0, 0, 0
    lo, hi = edges[np.argmax(edges[:, 1] - edges[:, 0])]
    return int(lo), int(hi), int(index[lo, 0])


CHUNK = 4096  # mixed cells per matrix product: bounds the (pixels, cells, classes) block to ~20 MB


def upsample_argmax(logits: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """argmax over channels of ``logits`` (C, h, w) resized bilinearly to ``size`` (H, W): uint8 (H, W).

    Equals ``F.interpolate(logits[None], size, mode="bilinear", align_corners=False)[0].argmax(0)``
    except where two classes tie to float rounding.
    """
    # One thread, for torch and for numpy's BLAS: these are many small ops, and on a busy
    # machine every parallel region waits for its slowest thread (measured at 1024x2048 on 2
    # shared cores: 28 ms on one thread, 60-280 ms on two). BLAS matters most: OpenBLAS's
    # workers busy-wait for a while after each product, and on 2 cores they took the CPU
    # from the *next* request's network: OpenVINO mixed at 1024x2048 ran in 104 ms right
    # after this function with 2 BLAS threads, 58 ms with 1 (and 58 ms after itself).
    with _one_blas_thread():
        threads = torch.get_num_threads()
        if threads == 1:
            return _upsample_argmax(logits, size)
        torch.set_num_threads(1)
        try:
            return _upsample_argmax(logits, size)
        finally:
            torch.set_num_threads(threads)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    # Finds the loaded libraries once (~5 ms), so it knows numpy's BLAS (loaded with numpy,
    # before this), which is the one the products here run in; a BLAS loaded later (OpenCV
    # ships its own OpenBLAS) is never used here.
    return ThreadpoolController()


def _one_blas_thread():
    # Concurrent calls (the demo's worker threads) may restore the count while another
    # still runs; that costs that call some speed, never a wrong label.
    return _blas_controller().limit(limits=1, user_api="blas")


def _upsample_argmax(logits: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    t = torch.as_tensor(logits)
    if t.dtype != torch.float32:
        t = t.float()
    c, h, w = t.shape
    out_h, out_w = int(size[0]), int(size[1])
    if c > 255:
        raise ValueError(f"{c} classes do not fit uint8 labels")
    # (h+2, w+2, C), border replicated: one contiguous C-vector per source pixel. One pass
    # from either memory layout (OpenVINO hands over logits that are NHWC in memory).
    hwc = torch.from_numpy(np.pad(t.detach().numpy().transpose(1, 2, 0), ((1, 1), (1, 1), (0, 0)), mode="edge"))
    low = hwc.argmax(2).to(torch.uint8).numpy()
    (count_y, rows, py, run_y), (count_x, cols, px, run_x) = _geometry(out_h, h), _geometry(out_w, w)

    # A cell (i, j) spans padded pixels i..i+1 x j..j+1; where all four share a label, so do its outputs.
    a, b, cc, d = low[:-1, :-1], low[:-1, 1:], low[1:, :-1], low[1:, 1:]
    labels = np.repeat(np.repeat(a, count_y, axis=0), count_x, axis=1)
    mixed = ((a != b) | (a != cc) | (a != d)) & (count_y[:, None] > 0) & (count_x[None, :] > 0)
    ci, cj = np.nonzero(mixed)
    if ci.size == 0:
        return labels
    gy, gx = rows.shape[1], cols.shape[1]
    # Cells share weight patterns (for the x8 resize: first, interior, last row/column), and
    # all cells of one pattern pair are one matrix product: (Gy*Gx, 4) @ (4, cells*C).
    pattern = py[1].reshape(-1)[ci] * len(px[0]) + px[1].reshape(-1)[cj]
    for pid in np.unique(pattern):
        sel = np.nonzero(pattern == pid)[0]
        fy = torch.tensor(py[0][pid // len(px[0])])[:, None]  # (Gy, 1); a copy: the cached arrays are read-only
        fx = torch.tensor(px[0][pid % len(px[0])])[None, :]  # (1, Gx)
        weights = torch.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], -1).reshape(gy * gx, 4)
        for start in range(0, sel.size, CHUNK):
            part = sel[start:start + CHUNK]
            i, j = ci[part], cj[part]
            ti, tj = torch.from_numpy(i), torch.from_numpy(j)
            # The four corner vectors of each cell: (4, M, C).
            corners = torch.stack([hwc[ti, tj], hwc[ti, tj + 1], hwc[ti + 1, tj], hwc[ti + 1, tj + 1]], 0)
            cell_labels = _cell_labels(weights, corners)
            block = _block_view(labels, run_y, run_x, gy, gx, i, j)
            if block is not None:  # all in the regular interior: (cells, Gy, cells, Gx) view, no index arrays
                block[i - run_y[0], :, j - run_x[0], :] = cell_labels.reshape(-1, gy, gx)
            else:
                flat = rows[i][:, :, None] * out_w + cols[j][:, None, :]  # (M, Gy, Gx) positions in the label image
                labels.reshape(-1)[flat.reshape(-1)] = cell_labels.reshape(-1)
    return labels


def _block_view(labels: np.ndarray, run_y, run_x, gy: int, gx: int, i: np.ndarray, j: np.ndarray):
    """``labels`` as (cells, Gy, cells, Gx) over the regular runs of both axes, if cells (i, j) all lie there."""
    (y_lo, y_hi, y0), (x_lo, x_hi, x0) = run_y, run_x
    if not (y_lo <= i.min() and i.max() < y_hi and x_lo <= j.min() and j.max() < x_hi):
        return None
    ny, nx = y_hi - y_lo, x_hi - x_lo
    return labels[y0:y0 + ny * gy, x0:x0 + nx * gx].reshape(ny, gy, nx, gx, copy=False)  # a view, or an error


FEW = 4  # candidate classes interpolated per cell; cells with more take the all-classes path


def _cell_labels(weights: torch.Tensor, corners: torch.Tensor) -> np.ndarray:
    """Argmax labels (M, P) of P bilinear samples (``weights`` (P, 4)) of M cells (``corners`` (4, M, C)).

    Pruning, exact: each sample is a convex combination of the 4 corners, so
    class k's value anywhere in the cell is at most its largest corner value
    ``hi_k``, and the winner's value is at least ``T = max_j min_corners l_j``.
    A class with ``hi_k < T`` can never win; at class boundaries usually 2-3
    classes survive of 19, and only those are interpolated.
    """
    _, m, c = corners.shape
    p = weights.shape[0]
    hi = corners.amax(0)  # (M, C)
    alive = hi >= corners.amin(0).amax(1, keepdim=True)  # (M, C): the classes that can win somewhere in the cell
    out = np.empty((m, p), np.uint8)
    if c > FEW:
        n_alive = alive.sum(1)
        w = weights.numpy()
        # Cells grouped by how many classes survive, each group interpolating only that many
        # (2 in ~60% of boundary cells with the bundled model, 3 in ~25%, 4 in ~10%).
        for n in range(1, FEW + 1):
            idx = torch.nonzero(n_alive == n)[:, 0]
            if len(idx):
                out[idx.numpy()] = _few_labels(w, corners[:, idx], alive[idx], n).T
        rest = torch.nonzero(n_alive > FEW)[:, 0]
    else:
        rest = torch.arange(m)
    if len(rest):
        values = (weights @ corners[:, rest].reshape(4, -1)).reshape(p, len(rest), c)
        out[rest.numpy()] = values.argmax(2).to(torch.uint8).numpy().T
    return out


def _few_labels(w: np.ndarray, corners: torch.Tensor, alive: torch.Tensor, n: int) -> np.ndarray:
    """Labels (P, M) of cells (``corners`` (4, M, C)) that each have exactly ``n`` live classes."""
    c = corners.shape[2]
    # Each cell's live classes in class order, so on an exact tie the lower class wins, as with argmax.
    key = alive.to(torch.int16) * (c + 1) - torch.arange(c, dtype=torch.int16)
    cand = key.topk(n, dim=1).indices  # (M, n)
    sub = corners.gather(2, cand[None].expand(4, -1, -1)).numpy()  # (4, M, n)
    cand = cand.numpy().astype(np.int16)
    # Running argmax over the candidates with arithmetic, not selects (several times faster here).
    best = w @ sub[:, :, 0]  # (P, M)
    label = np.broadcast_to(cand[:, 0], best.shape).copy()
    for k in range(1, n):
        value = w @ sub[:, :, k]
        better = value > best  # strict: on a tie the earlier (lower) class keeps it
        label += better * (cand[:, k] - label)
        np.maximum(best, value, out=best)
    return label

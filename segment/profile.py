"""Where an OpenVINO backend's time goes, layer by layer, from the engine's own counters.

OpenVINO keeps per-node timings when a model is compiled with ``PERF_COUNT``
(``BackendSpec(perf_count=True)``). :func:`profile_layers` runs a backend a few
times and keeps each node's median; :func:`summarize` adds them up by part of
the network (``stem``, ``block 0`` ... ``block 14``, ``head``, ``other``: the
normalization before the stem and the engine's own conversions) or by kind of layer (dense and depthwise
convolutions apart), so two precisions of one model can be compared part by
part: which layers int8 speeds up, and which it does not.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np


def layer_part(name: str) -> str:
    """The network part of an exported layer name (``/blocks.3/...`` -> ``block 3``)."""
    m = re.match(r"/blocks\.(\d+)/", name)
    if m:
        return f"block {int(m.group(1))}"
    for part in ("stem", "head"):
        if name.startswith(f"/{part}/"):
            return part
    return "other"


def layer_kind(node_type: str, exec_type: str) -> str:
    """Dense and depthwise convolutions apart (OpenVINO calls both Convolution once fused)."""
    if node_type == "Convolution" and "dw" in exec_type.lower():
        return "Convolution (depthwise)"
    if node_type == "GroupConvolution":
        return "Convolution (depthwise)"
    return node_type


def profile_layers(backend, image: np.ndarray, runs: int = 5) -> list[dict]:
    """Per executed node: name, type, the kernel it ran (``exec_type``) and its median ms over ``runs``.

    ``backend``: an ``OpenVinoBackend`` built with ``perf_count=True``; "mixed" runs two
    compiled models and both are read."""
    requests = [r for r in (getattr(backend, "first_request", None), backend.request) if r is not None]
    times: dict[tuple[int, str], list[float]] = defaultdict(list)
    info: dict[tuple[int, str], dict] = {}
    backend.run(image)  # untimed: the first run allocates
    for _ in range(runs):
        backend.run(image)
        for i, request in enumerate(requests):
            for node in request.get_profiling_info():
                if node.status.name != "EXECUTED":
                    continue
                key = (i, node.node_name)
                times[key].append(node.real_time.total_seconds() * 1e3)
                info[key] = {"name": node.node_name, "type": node.node_type, "exec_type": node.exec_type}
    return [{**info[k], "ms": float(np.median(v))} for k, v in times.items()]


def part_order(part: str) -> tuple[int, int]:
    """Network order: other (the input side), stem, block 0, 1, ..., head."""
    if part.startswith("block "):
        return 2, int(part.split()[1])
    return {"other": (0, 0), "stem": (1, 0), "head": (3, 0)}.get(part, (4, 0))


def summarize(layers: list[dict], by: str = "part") -> dict[str, float]:
    """Milliseconds per network part in network order (``by="part"``), or per kind of layer,
    largest first (``by="kind"``)."""
    if by not in ("part", "kind"):
        raise ValueError(f"summarize by 'part' or 'kind', not {by!r}")
    totals: dict[str, float] = defaultdict(float)
    for layer in layers:
        key = layer_part(layer["name"]) if by == "part" else layer_kind(layer["type"], layer["exec_type"])
        totals[key] += layer["ms"]
    order = (lambda kv: part_order(kv[0])) if by == "part" else (lambda kv: -kv[1])
    return dict(sorted(totals.items(), key=order))

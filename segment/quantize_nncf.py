"""int8 for OpenVINO with NNCF's post-training quantization of the OpenVINO IR.

ONNX Runtime's QDQ quantizer (``segment.quantize``) leaves hardswish,
hardsigmoid and the squeeze-and-excitation products outside its operator set,
so its graph is full of quantize/dequantize pairs and OpenVINO ran it slower
than fp32. NNCF places OpenVINO's own FakeQuantize ops where the CPU plugin
fuses them into int8 kernels, quantizes weights per channel, and corrects the
biases that rounding shifts. What it quantizes is set by :class:`Int8Settings`;
``ignored`` names layers kept in float (regular expressions over the IR's layer
names, which are the exported ONNX node names: ``/stem/...``, ``/head/...``).

Calibration images are the user's photos (``--calib-data``), else the street
photos bundled with the package (``segment.quantize.calibration_folder``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

# Layer groups that may be kept in float, as patterns over the exported layer names.
# A pattern that matches nothing in a model (another head or backbone) is ignored.
SCOPES: dict[str, tuple[str, ...]] = {
    "stem": (r"/stem/.*",),                        # the first conv: sees the image at full resolution
    "block0": (r"/blocks\.0/.*",),                 # the first block at 1/2 resolution ("mixed" keeps it fp32 too)
    "gate": (r"/head/scale/.*",),                  # LR-ASPP's pooled 1x1 conv + hardsigmoid gate
    "classifiers": (r"/head/high_classifier/.*", r"/head/low_classifier/.*"),  # the two 1x1 convs to the logits
}


@dataclasses.dataclass(frozen=True)
class Int8Settings:
    """What ``nncf.quantize`` is asked for; every field is part of the export's cache key."""

    # Keys of SCOPES kept in float. Block 0 with them: on 50 labelled CamVid photos int8 then cost
    # 0.28 / 0.14 mIoU at half / full against 0.65 / 0.97 without it, for about the same speed
    # (docs/inference.md, "int8 with NNCF").
    ignored: tuple[str, ...] = ("stem", "block0", "gate", "classifiers")
    # Asymmetric activations ("mixed"; "performance" is symmetric): h-swish outputs reach -0.375, which a
    # symmetric range spends half its levels on. Same speed here; the small model's drop at full fell
    # from 0.57 to 0.33 mIoU (docs/inference.md, "int8 with NNCF").
    preset: str = "mixed"
    fast_bias_correction: bool = True

    def patterns(self) -> list[str]:
        unknown = [g for g in self.ignored if g not in SCOPES]
        if unknown:
            raise ValueError(f"unknown layer groups {unknown}; choose from {sorted(SCOPES)}")
        return [p for g in self.ignored for p in SCOPES[g]]

    def tag(self) -> str:
        """A short hash of these settings and NNCF's version, for the cache file name."""
        import importlib.metadata as md

        try:
            version = md.version("nncf")
        except md.PackageNotFoundError:
            version = "none"
        blob = json.dumps({**dataclasses.asdict(self), "nncf": version}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


DEFAULT_SETTINGS = Int8Settings()


def settings_from_groups(text: str | None) -> Int8Settings | None:
    """``--int8-float`` on the command line: comma-separated keys of SCOPES kept in float
    (e.g. "stem,gate,classifiers"; "" for none); None (not given) stays None: the defaults."""
    if text is None:
        return None
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    settings = dataclasses.replace(DEFAULT_SETTINGS, ignored=groups)
    settings.patterns()  # unknown names fail here, before any export
    return settings


def quantize_openvino(xml_path: str | Path, out_xml: str | Path, *, images: list[np.ndarray],
                      settings: Int8Settings = DEFAULT_SETTINGS) -> Path:
    """Write an int8 IR of the fp32 IR ``xml_path`` calibrated on ``images`` (H, W, 3 uint8 each).

    ``out_xml`` names the model's .xml; like ``segment.export.onnx_to_openvino``, the two
    files are written into a folder named after it (``<stem>.ir/model.xml``) that is moved
    into place as one, so a crash leaves no half-written model.
    """
    import openvino as ov

    from segment.atomic import write_path_atomic
    from segment.nncf_quiet import quiet_nncf

    model = ov.Core().read_model(str(xml_path))
    with quiet_nncf():
        import nncf

        dataset = nncf.Dataset([img[None] for img in images])  # the graph's input: (1, H, W, 3) uint8
        quantized = nncf.quantize(
            model, dataset,
            preset=nncf.QuantizationPreset(settings.preset),
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(images),
            fast_bias_correction=settings.fast_bias_correction,
            ignored_scope=nncf.IgnoredScope(patterns=settings.patterns(), validate=False),
        )
    out_xml = Path(out_xml)

    def write(tmp_dir: Path) -> None:
        tmp_dir.mkdir()
        ov.save_model(quantized, str(tmp_dir / "model.xml"), compress_to_fp16=False)

    folder = write_path_atomic(out_xml.parent / (out_xml.stem + ".ir"), write)
    return folder / "model.xml"


def fake_quantized_layers(xml_path: str | Path) -> dict[str, list[str]]:
    """For a quantized IR: ``quantized``, the convolutions whose weights or input pass a FakeQuantize,
    and ``float``, those that take neither (the ignored scope)."""
    import openvino as ov

    model = ov.Core().read_model(str(xml_path))
    out: dict[str, list[str]] = {"quantized": [], "float": []}

    def through_fq(node, depth: int = 0) -> bool:
        # A weight may reach the conv as FakeQuantize -> (Convert / Reshape ...) -> conv.
        if node.get_type_name() == "FakeQuantize":
            return True
        if depth >= 3 or node.get_type_name() not in ("Convert", "Reshape", "Multiply", "Subtract"):
            return False
        return any(through_fq(i.get_source_output().get_node(), depth + 1) for i in node.inputs())

    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "GroupConvolution"):
            q = any(through_fq(i.get_source_output().get_node()) for i in op.inputs())
            out["quantized" if q else "float"].append(op.get_friendly_name())
    return out

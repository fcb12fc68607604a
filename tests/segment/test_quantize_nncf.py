"""OpenVINO int8 through NNCF: a small model at 64x128, a few synthetic calibration images, no dataset."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from segment.backends import BackendSpec, _artifact, build_backend  # noqa: E402
from segment.quantize import BUNDLED_PHOTOS, synthetic_scene  # noqa: E402
from segment.quantize_nncf import SCOPES, Int8Settings, fake_quantized_layers  # noqa: E402

SIZE = (64, 128)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A preset with random weights and BN statistics measured on street scenes (labels vary), its cache."""
    import torch

    from segment.predict import Predictor

    torch.manual_seed(0)  # the same random weights every run
    p = Predictor.from_preset("small")  # V3-Small: the same stem and head names, less to export and calibrate
    return p, tmp_path_factory.mktemp("cache")


def _int8(tiny, **kw):
    p, cache = tiny
    kw.setdefault("calib_data", None)
    return _artifact(p.model, mean=p.mean_unit, std=p.std_unit, size=SIZE, fmt="openvino", precision="int8",
                     calib_count=kw.pop("calib_count", 3), cache_dir=cache, **kw)


def test_int8_ir_has_fake_quantize_and_keeps_the_ignored_scope_in_float(tiny):
    import re

    from segment.backends import _calib_tag

    xml = _int8(tiny)
    assert f"graph-int8-nncf-{_calib_tag(BUNDLED_PHOTOS, 3)}-" in str(xml)  # calibrated on the bundled photos
    layers = fake_quantized_layers(xml)
    assert len(layers["quantized"]) > 20  # the backbone's convolutions run int8
    ignored = [p for g in Int8Settings().ignored for p in SCOPES[g]]
    in_scope = lambda name: any(re.fullmatch(p, name) for p in ignored)  # noqa: E731
    assert not [n for n in layers["quantized"] if in_scope(n)]
    float_groups = {n.split("/")[1] if n.startswith("/stem") else "/".join(n.split("/")[1:3]) for n in layers["float"]}
    assert {"stem", "head/scale", "head/high_classifier", "head/low_classifier"} <= float_groups
    assert all(in_scope(n) for n in layers["float"])  # nothing else was left out


def test_int8_agrees_with_fp32_on_most_pixels(tiny):
    p, cache = tiny
    run = {}
    for precision in ("fp32", "int8"):
        backend = build_backend(p.model, mean=p.mean_unit, std=p.std_unit, size=SIZE, cache_dir=cache,
                                spec=BackendSpec(backend="openvino", precision=precision, threads=1), calib_count=3)
        assert backend.precision == (_int8_label() if precision == "int8" else precision)
        run[precision] = [backend.run(synthetic_scene(*SIZE, seed=50 + i)[None]) for i in range(3)]
    agree, confident, corr = [], [], []
    for f, q in zip(run["fp32"], run["int8"]):
        same = f.argmax(0) == q.argmax(0)
        top2 = np.sort(f, axis=0)[-2:]
        margin = top2[1] - top2[0]
        agree.append(same.mean())
        confident.append(same[margin > np.median(margin)].mean())
        corr.append(np.corrcoef(f.ravel(), q.ravel())[0, 1])
    # Random weights leave small margins between classes, so a loose floor overall (the bundled
    # model agrees on 99%); where fp32's top two logits are further apart than the median, far more.
    assert np.mean(agree) > 0.6 and np.mean(confident) > 0.85 and min(corr) > 0.85, (agree, confident, corr)


def test_cache_key_follows_calibration_set_and_settings(tiny, tmp_path):
    from segment.backends import _calib_tag

    bundled = _int8(tiny)
    assert _int8(tiny) == bundled  # cached, not quantized again
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(synthetic_scene(*SIZE, seed=200 + i)).save(folder / f"{i}.png")
    tag = _calib_tag(folder, 3)
    assert tag.startswith("calib") and tag != _calib_tag(BUNDLED_PHOTOS, 3) != _calib_tag(None, 3) != _calib_tag(None, 4)
    Image.fromarray(synthetic_scene(*SIZE, seed=300)).save(folder / "2.png")  # another photo under the same name
    assert _calib_tag(folder, 3) != tag
    assert _calib_tag(folder, 2) != _calib_tag(folder, 3)
    tags = {Int8Settings().tag(), Int8Settings(ignored=("stem",)).tag(), Int8Settings(preset="performance").tag(),
            Int8Settings(fast_bias_correction=False).tag()}
    assert len(tags) == 4
    assert f"-{_calib_tag(BUNDLED_PHOTOS, 3)}-{Int8Settings().tag()}.ir" in str(bundled)


def test_int8_float_groups_from_the_command_line():
    from segment.quantize_nncf import settings_from_groups

    assert settings_from_groups(None) is None  # not given: the defaults, wherever they are resolved
    assert settings_from_groups("") == Int8Settings(ignored=())
    assert settings_from_groups(" stem, gate ") == Int8Settings(ignored=("stem", "gate"))
    with pytest.raises(ValueError, match="unknown layer groups"):
        settings_from_groups("stem,heads")


def test_a_predictor_builds_and_names_the_int8_model_of_its_settings(tiny):
    """Predictor(int8_settings=...) builds that variant (nothing kept in float here), and its
    guard records' quantizer tag is that variant's, so a record of the default model does not apply."""
    from segment.backends import int8_quantizer
    from segment.predict import Predictor

    p, cache = tiny
    bare = Int8Settings(ignored=())
    variant = Predictor(model=p.model, classes=p.classes, palette=p.palette, mean=p.mean_unit, std=p.std_unit,
                        backend="openvino", precision="int8", threads=1, cache_dir=cache, int8_settings=bare)
    backend = variant.build(BackendSpec(backend="openvino", precision="int8", threads=1), SIZE)
    assert backend.precision == "int8"  # no convolution left in float: plain int8 on any CPU
    xml = next(cache.rglob(f"graph-int8-nncf-*-{bare.tag()}.ir/model.xml"))
    layers = fake_quantized_layers(xml)
    # The gate and classifiers run int8 too; NNCF itself leaves the stem's conv on the image in float.
    assert all(n.startswith("/stem/") for n in layers["float"])
    assert {"scale", "high_classifier", "low_classifier"} <= {n.split("/")[2] for n in layers["quantized"]
                                                               if n.startswith("/head/")}
    assert int8_quantizer("openvino", None, int8_settings=bare) != int8_quantizer("openvino", None)
    assert bare.tag() in int8_quantizer("openvino", None, int8_settings=bare)


def _int8_label() -> str:
    """What an OpenVINO int8 backend must call itself here: its float layers run bf16 where OpenVINO has bf16."""
    from segment.backends.openvino_backend import _core, _has_bf16

    return "int8+bf16" if _has_bf16(_core()) else "int8"


def test_int8_runs_its_float_layers_at_bf16_where_the_cpu_has_it(tiny):
    """The layers NNCF keeps in float (the stem here) run at the CPU's fast float precision,
    and the label says which: read from the compiled graph, not assumed."""
    from segment.backends.openvino_backend import conv_precisions

    backend = build_backend(tiny[0].model, mean=tiny[0].mean_unit, std=tiny[0].std_unit, size=SIZE,
                            spec=BackendSpec(backend="openvino", precision="int8", threads=1), cache_dir=tiny[1],
                            calib_count=3)
    found = set(conv_precisions(backend.compiled).values())
    floats = found - {"u8", "i8"}
    assert found & {"u8", "i8"}, found  # quantized convolutions
    assert floats == ({"bf16"} if _int8_label() == "int8+bf16" else {"f32"}), found
    assert backend.precision == _int8_label()


def test_quantizing_prints_nothing_but_nncf_warnings(tiny, capfd):
    """NNCF's info lines, progress bars and torch's CUDA notice are dropped: a quantization prints
    nothing (the demo runs a dozen), and stdout carries the commands' results alone."""
    capfd.readouterr()
    _int8(tiny, calib_count=2)
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)

"""``segment bench``: runs, always includes the peer, prints valid JSON with the promised fields."""

import json

import pytest

from segment.cli import main

FIELDS = {"model", "paper_row", "backend", "precision", "size", "height", "width", "threads", "median_ms", "p90_ms",
          "madds", "request_median_ms", "request_p90_ms", "peer_ratio"}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(["bench", "--size", "64x128", "--threads", "1", "--runs", "2", "--warmup", "1",
                       "--backend", "torch", "--backend", "onnxruntime", "--precision", "fp32",
                       "--peer", "smp", "--cache-dir", str(cache), "--json"])
    assert status == 0
    return json.loads(buf.getvalue())


def test_bench_json_fields(rows):
    assert isinstance(rows, list) and rows
    for r in rows:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["size"] == "64x128" and (r["height"], r["width"]) == (64, 128) and r["threads"] == 1
        assert 0 < r["median_ms"] <= r["p90_ms"] and 0 < r["request_median_ms"] <= r["request_p90_ms"]
        assert r["madds"] > 0


def test_bench_has_peers_and_our_backends(rows):
    by_model = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    peer = by_model["torchvision_lraspp"][0]
    assert peer["paper_row"] is None and peer["backend"] == "torch" and peer["precision"] == "fp32"
    assert peer["peer_ratio"] == 1.0
    assert "smp_deeplabv3plus_mobilenetv2" in by_model
    ours = by_model["mnv3-rf2-lraspp-f128"]
    assert {(r["backend"], r["precision"]) for r in ours} == {("torch", "fp32"), ("onnxruntime", "fp32")}
    for r in ours:
        assert r["paper_row"] == "T7-8"
        assert r["agreement"] >= 0.995
        # peer_ratio is the peer's request time over ours, from the same run.
        assert r["peer_ratio"] == pytest.approx(peer["request_median_ms"] / r["request_median_ms"], rel=0.02)
    # The default model has fewer MAdds than the torchvision peer at the same size.
    assert ours[0]["madds"] < peer["madds"]


def test_bench_table_and_errors(capsys, tmp_path):
    assert main(["bench", "--size", "48x96", "--threads", "1", "--runs", "1", "--warmup", "0",
                 "--backend", "torch", "--precision", "fp32", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "torchvision_lraspp" in out and "x peer" in out
    assert main(["bench", "--size", "tiny"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["bench", "--preset", "nonexistent", "--size", "48x96"]) == 2

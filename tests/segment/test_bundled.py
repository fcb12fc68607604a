"""The bundled demo checkpoint and the guard records shipped beside it."""

import json

from segment.bundled import DEFAULT_CHECKPOINT
from segment.predict import MIN_AGREEMENT, Predictor, guard_file_for


def test_shipped_guard_records_belong_to_the_shipped_weights():
    path = guard_file_for(DEFAULT_CHECKPOINT)
    assert path.is_file(), "regenerate with 'segment bench --guard-data ... --guard-out' after retraining"
    records = json.loads(path.read_text())["records"]
    predictor = Predictor.from_checkpoint(DEFAULT_CHECKPOINT)
    assert predictor.guard_file == path
    # Retrained weights change the key: stale records would then be ignored, so catch it here.
    assert {r["key"] for r in records} == {predictor.key}
    for r in records:
        assert {"backend", "precision", "size", "engine", "cpu", "images", "agreement", "agreement_min",
                "miou_drop"} <= set(r)
        assert 0.0 <= r["agreement_min"] <= r["agreement"] <= 1.0
        assert "root" not in r  # no paths of the machine that measured them
    # What the speed claims rest on: mixed passes the guard at both sizes, whole-model bf16 fails at full.
    by = {(r["backend"], r["precision"], tuple(r["size"])): r for r in records}
    for size in ((512, 1024), (1024, 2048)):
        assert by["openvino", "mixed", size]["agreement"] >= MIN_AGREEMENT
    assert by["openvino", "bf16", (1024, 2048)]["agreement"] < MIN_AGREEMENT

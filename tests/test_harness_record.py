"""The typed run record: ``run.json`` written and read through ``RunRecord`` only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_fixtures import a_record

from dupbench.harness.record import RunRecord
from dupbench.harness.store import RUN_FILE, StoredRun

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


@pytest.mark.parametrize("record", [a_record(), a_record(status="reused", reused_from="/x")])
def test_a_record_round_trips_through_json(record):
    text = json.dumps(record.to_json())
    assert RunRecord.from_json(json.loads(text)) == record


def test_reused_from_is_written_only_for_a_reused_run():
    assert "reused_from" not in a_record().to_json()
    reused = a_record().reused("/runs/original", ["method=phash", "force=true"])
    assert reused.to_json()["reused_from"] == "/runs/original"
    assert reused.status == "reused" and reused.overrides == ["method=phash", "force=true"]


def test_a_record_missing_a_key_is_refused():
    data = a_record().to_json()
    del data["label"]
    with pytest.raises(TypeError):
        RunRecord.from_json(data)


@pytest.mark.parametrize("path", sorted(REFERENCE.rglob(RUN_FILE)), ids=lambda p: p.parent.name)
def test_every_reference_run_loads_and_writes_back_the_same_keys(path):
    stored = json.loads(path.read_text())
    record = StoredRun(path.parent).record
    assert record.to_json() == stored


def test_missing_group_labels_are_stored_as_one_marker(tmp_path):
    import numpy as np

    from dupbench.harness.store import NO_LABEL, StoredTruth, label_strings

    labels = label_strings(["jpeg", None, float("nan"), 3])
    assert labels.tolist() == ["jpeg", NO_LABEL, NO_LABEL, "3"]
    # a run stored before NO_LABEL wrote a missing float as "nan"
    old = StoredTruth(np.array([[0, 1], [1, 2]]), 3, {"severity": np.array(["2", "nan"])})
    old.save(tmp_path / "truth.npz")
    assert StoredTruth.load(tmp_path / "truth.npz").groups["severity"].tolist() == ["2", NO_LABEL]

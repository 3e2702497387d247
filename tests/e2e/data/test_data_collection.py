"""Model data collection end to end: a real control plane, router and replica running an unchanged v1
entry script that calls ``ModelDataCollector.collect``; rows read back with ``modelhost data``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from typing import Any

import httpx

from tests.e2e.deploy.conftest import Plane, aks
from tests.support.net import wait_until

# The v1 tutorial's shape (docs v1/how-to-enable-data-collection.md): inputs as a numpy array, the
# prediction as a list carrying the inputs' correlation values.
V1_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from azureml.monitoring import ModelDataCollector

    def init():
        global inputs_dc, prediction_dc
        inputs_dc = ModelDataCollector("sklearn_model", designation="inputs",
                                       feature_names=["feat1", "feat2", "feat3"])
        prediction_dc = ModelDataCollector("sklearn_model", designation="predictions",
                                           feature_names=["prediction"])

    def run(raw_data):
        data = np.array(json.loads(raw_data)["data"])
        result = data.sum(axis=1).tolist()
        correlations = inputs_dc.collect(data)
        prediction_dc.collect(prediction_dc.add_correlations(result, correlations))
        return result
""")


def _cli(plane: Plane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelhost.cli", *args], env=plane.env, capture_output=True,
                          text=True, timeout=60)


def _export(plane: Plane, *args: str) -> list[dict[str, str]]:
    done = _cli(plane, "data", "export", "scored", *args)
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(io.StringIO(done.stdout)))


def test_collected_rows_carry_the_request_ids_the_client_saw(shared: Plane) -> None:
    plane = shared
    model = plane.register_model("sklearn_model")
    op = plane.deploy("scored", V1_SCRIPT, models=[model], config=aks(collect_model_data=True))
    assert op["state"] == "Succeeded", op
    assert any(line.startswith("data collection: on") for line in op["lines"])
    key, _ = plane.keys("scored")

    seen: list[str] = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        for i in range(20):
            # some clients name their request (v1: x-ms-client-request-id comes back as x-ms-request-id)
            headers = {"x-ms-client-request-id": f"client-{i}"} if i % 5 == 0 else {}
            r = client.post(plane.score_url("scored"), json={"data": [[i, 1, 2]]}, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json() == [i + 3]
            seen.append(r.headers["x-ms-request-id"])
    assert len(set(seen)) == 20 and "client-5" in seen

    rows: list[dict[str, str]] = []

    def all_written() -> bool:
        rows[:] = _export(plane)
        return len(rows) >= 40

    wait_until(all_written, deadline_s=20, interval_s=0.5, what="40 collected rows")
    inputs = [r for r in rows if r["$designation"] == "inputs"]
    predictions = [r for r in rows if r["$designation"] == "predictions"]
    assert len(inputs) == 20 and len(predictions) == 20
    assert sorted(r["$aml_request_id"] for r in inputs) == sorted(seen)
    assert sorted(r["$aml_request_id"] for r in predictions) == sorted(seen)
    by_id = {r["$aml_dc_correlation_id"]: r for r in inputs}
    for p in predictions:  # each prediction joins its input through v1's correlation id
        source = by_id[p["$aml_dc_correlation_id"]]
        assert float(p["prediction"]) == float(source["feat1"]) + 3
        assert source["$aml_request_id"] == p["$aml_request_id"]
    assert {(r["$model"], r["$model_version"], r["$aml_service_name"]) for r in inputs} == {
        ("sklearn_model", "1", "scored")}

    # filters and formats
    assert len(_export(plane, "--designation", "inputs")) == 20
    assert _export(plane, "--model", "other") == []
    assert _export(plane, "--since", "2999-01-01") == []
    done = _cli(plane, "data", "export", "scored", "--format", "jsonl", "--designation", "predictions")
    assert [json.loads(line)["$aml_request_id"] for line in done.stdout.splitlines()] != []
    bad = _cli(plane, "data", "export", "scored", "--since", "yesterday")
    assert bad.returncode == 1 and "is not a date" in bad.stderr and "YYYY-MM-DD" in bad.stderr

    # the listing: v1's partition layout, one file per replica process, counters
    listing: dict[str, Any] = plane.client.get("/api/v1/services/scored/data").json()
    assert listing["collectModelData"] is True and listing["totals"]["rows"] == 40
    assert {(p["model"], p["version"], p["designation"]) for p in listing["partitions"]} == {
        ("sklearn_model", "1", "inputs"), ("sklearn_model", "1", "predictions")}
    wait_until(lambda: sum(c["written"] for c in
                           plane.client.get("/api/v1/services/scored/data").json()["collectors"]) == 40,
               deadline_s=10, what="the writer's counters")
    text = _cli(plane, "data", "list", "scored")
    assert text.returncode == 0 and "40 row(s) in 2 file(s)" in text.stdout
    assert "0 row(s) dropped" in text.stdout

    # a clean stop (SIGTERM) flushes and reports the writer's counters in the replica log
    r = plane.client.delete("/api/v1/services/scored")
    assert r.status_code == 202, r.text
    assert plane.wait(r.json()["operation"]["id"])["state"] == "Succeeded"
    logs = "".join(p.read_text() for p in plane.settings.logs_dir.rglob("*.log") if "scored" in str(p))
    assert "Model data collection stopped: 40 row(s) written, 0 dropped" in logs
    assert len(_export(plane)) == 40  # the data outlives the service


def test_services_without_collection_and_unknown_services(shared: Plane) -> None:
    plane = shared
    op = plane.deploy("plain", V1_SCRIPT, config=aks())
    assert op["state"] == "Succeeded", op
    key, _ = plane.keys("plain")
    r = httpx.post(plane.score_url("plain"), json={"data": [[1, 2, 3]]},
                   headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200 and r.json() == [6]  # collect() is a no-op
    assert not (plane.settings.home / "data" / "plain").exists()

    listing = plane.client.get("/api/v1/services/plain/data").json()
    assert listing["collectModelData"] is False and listing["partitions"] == []
    assert "collect_model_data=True" in listing["message"]
    export = plane.client.get("/api/v1/services/plain/data/export")
    assert export.status_code == 404 and "collect_model_data" in export.json()["error"]["hint"]

    missing = plane.client.get("/api/v1/services/nope/data")
    assert missing.status_code == 404 and missing.json()["error"]["hint"]
    done = _cli(plane, "data", "list", "nope")
    assert done.returncode == 1 and "nope" in done.stderr

"""The benchmark harness (bench/run.py) still runs end to end, so it cannot rot.

It runs once at a tiny scale on SQLite with `none` and `signaltrail`, which
need nothing beyond signaltrail's own dependencies (not the bench group), in
a subprocess as `make bench` would. The database under test does not matter
here: the harness makes its own SQLite files.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"

pytest.importorskip("rich", reason="bench/run.py needs rich (a signaltrail dependency)")

SINGLE = ("create", "save", "save_txn", "delete", "m2m_add")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    result = _run(
        "--scale", "0.001", "--repeat", "1", "--db", "sqlite",
        "--contenders", "none,signaltrail", "--out", str(out),
    )  # fmt: skip
    return result, out


@pytest.fixture(scope="module")
def data(smoke) -> dict:
    result, out = smoke
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "latest.json").read_text())


def test_smoke_run_exits_0_and_writes_every_output(smoke):
    result, out = smoke
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| workload |" in result.stdout
    assert "## Targets" in result.stdout
    assert (out / "latest.md").read_text() == result.stdout.removesuffix("\n")
    data = json.loads((out / "latest.json").read_text())
    assert set(data) == {"meta", "databases", "skipped", "targets"}
    assert {"scale", "repeat", "sizes", "versions", "django", "python"} <= set(data["meta"])


def test_every_workload_is_measured_for_both_contenders(data):
    sqlite = data["databases"]["sqlite"]
    assert sqlite["contenders"] == ["none", "signaltrail"]
    workloads = sqlite["workloads"]
    assert set(workloads) == {
        *SINGLE, "bulk_create", "qs_update", "bulk_update", "read",
        "event_history", "event_latest", "read_hook", "trace_off",
    }  # fmt: skip
    for name, per in workloads.items():
        only_signaltrail = name.startswith("event_") or name in ("read_hook", "trace_off")
        expected = {"signaltrail"} if only_signaltrail else {"none", "signaltrail"}
        assert set(per) == expected, name
        for contender, summary in per.items():
            assert "error" not in summary, (name, contender, summary)
            assert summary["median_s"] > 0
            assert len(summary["runs_s"]) == 1
        if "none" in per:
            assert per["none"]["ratio"] == 1.0
            assert per["signaltrail"]["ratio"] > 0


def test_audit_rows_are_counted_per_affected_row(data):
    """`none` writes no audit row; signaltrail one per single save/delete/add."""
    workloads = data["databases"]["sqlite"]["workloads"]
    for name, per in workloads.items():
        if "none" in per:
            assert per["none"]["events"] == 0, name
    for name in SINGLE:
        assert workloads[name]["signaltrail"]["events_per_row"] == 1, name
    assert workloads["read"]["signaltrail"]["events"] == 0


def test_tracing_off_is_compared_with_the_state_before_any_block(smoke, data):
    """Each state is timed for send() and save(), in rounds, and judged against 1.02x."""
    result, _ = smoke
    micro = data["databases"]["sqlite"]["workloads"]["trace_off"]["signaltrail"]["micro"]
    assert micro["restored"] is True  # Django's own method is back after the blocks
    assert set(micro["ops"]) == {"send", "save"}
    for m in micro["ops"].values():
        assert m["before_ns"] > 0 and m["after_ns"] > 0 and m["elsewhere_ns"] > 0
        assert m["after_ratio"] > 0 and m["elsewhere_ratio"] > 0
        assert m["rounds"] == 3  # the least any scale shrinks to, per repetition
    judged = {t["target"]: t for t in data["targets"] if t["target"].startswith("tracing off")}
    assert len(judged) == 2
    assert all(t["limit"] == 1.02 and t["status"] in {"PASS", "MISS"} for t in judged.values())
    assert "dispatch outside any `trace()`/`muted()` block" in result.stdout
    assert "`Signal.send()` of a custom signal, 5 receivers" in result.stdout


def test_reading_is_also_compared_in_one_process(smoke, data):
    """The from_db hook against Django's own, same rows, alternating rounds."""
    result, _ = smoke
    micro = data["databases"]["sqlite"]["workloads"]["read_hook"]["signaltrail"]["micro"]
    read = micro["ops"]["read"]
    assert read["django_ns"] > 0 and read["signaltrail_ns"] > 0 and read["signaltrail_ratio"] > 0
    assert read["rounds"] == 3
    judged = [t for t in data["targets"] if t["target"].endswith("from_db hook vs Django's")]
    assert len(judged) == 1 and judged[0]["status"] in {"PASS", "MISS"}
    assert "reading, one process" in result.stdout


def test_targets_are_judged(data):
    targets = data["targets"]
    assert targets
    assert {t["status"] for t in targets} <= {"PASS", "MISS", "n/a"}
    assert all(t["db"] == "sqlite" for t in targets)


def test_bad_flags_get_a_clear_error_and_no_traceback(tmp_path):
    for args in (["--scale", "0"], ["--db", "oracle"], ["--contenders", "none,nope"],
                 ["--repeat", "x"], ["--workloads", "read,bogus"]):  # fmt: skip
        result = _run(*args, "--out", str(tmp_path))
        assert result.returncode == 2, args
        assert "error:" in result.stderr, args
        assert "Traceback" not in result.stderr, args
    assert not (tmp_path / "latest.json").exists()

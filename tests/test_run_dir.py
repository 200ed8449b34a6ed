"""`tuner.run_dir`: the run directory's file names defined once, and every command's reads and writes working
on an S3 bucket (a local moto server) as on a local folder."""
import ast
import socket
from pathlib import Path

import pyarrow.fs
import pytest
from moto.server import ThreadedMotoServer

from tests.test_report import report_at, synthetic_rows, trial_rows
from tuner import report
from tuner.run_dir import (
    REPORT_FOLDER,
    ROBUSTNESS_TABLE,
    SUMMARY_JSON,
    SUMMARY_MARKDOWN,
    SWEEP_RECORD,
    TRIALS_TABLE,
    join,
    read_json,
    read_rows,
    run_name,
    write_json,
    write_rows,
)

REPO = Path(__file__).resolve().parents[1]
FILE_NAMES = (SWEEP_RECORD, TRIALS_TABLE, ROBUSTNESS_TABLE, REPORT_FOLDER, SUMMARY_JSON, SUMMARY_MARKDOWN)


def test_every_run_directory_file_name_is_one_constant():
    literals = {name: [] for name in FILE_NAMES}
    for package in ("tuner", "trainables", "search_spaces"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in literals:
                    literals[node.value].append(path.relative_to(REPO).as_posix())
    assert literals == {name: ["tuner/run_dir.py"] for name in FILE_NAMES}


@pytest.fixture(scope="module")
def bucket(monkeypatch_module):
    """An empty S3 bucket on a moto server on localhost, as an s3:// URI prefix pyarrow understands."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch_module.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"127.0.0.1:{port}"
    pyarrow.fs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True,
                            region="us-east-1").create_dir("runs")
    yield f"s3://runs/sweeps?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


def test_tables_and_json_round_trip_through_s3(bucket):
    where = join(bucket, "round_trip")
    rows = synthetic_rows()[:3]
    write_rows(rows, join(where, ROBUSTNESS_TABLE))
    assert read_rows(join(where, ROBUSTNESS_TABLE)) == rows
    write_json({"space": "lambda_feat", "settings": {"seed": 0}}, join(where, SWEEP_RECORD))
    assert read_json(join(where, SWEEP_RECORD)) == {"space": "lambda_feat", "settings": {"seed": 0}}
    assert read_rows(join(where, TRIALS_TABLE)) == [] and read_json(join(where, "missing.json")) is None
    assert run_name(where) == "round_trip"


def test_the_report_reads_an_s3_run_and_writes_its_report_beside_it(bucket, tmp_path, capsys):
    remote = join(bucket, "synthetic_sweep")
    local = tmp_path / "synthetic_sweep"
    rows = synthetic_rows()
    for run_dir in (remote, str(local)):
        write_rows(rows, join(run_dir, ROBUSTNESS_TABLE))
        write_rows(trial_rows(rows), join(run_dir, TRIALS_TABLE))
        write_json({"space": "lambda_feat"}, join(run_dir, SWEEP_RECORD))

    report.main(["--run", remote])
    printed = capsys.readouterr().out
    remote_report = join(remote, REPORT_FOLDER)
    assert f"report: {join(remote_report, SUMMARY_MARKDOWN)}" in printed and "Pareto set" in printed
    remote_summary = read_json(join(remote_report, SUMMARY_JSON))
    local_summary = read_json(str(report_at([local]) / SUMMARY_JSON))
    for summary in (remote_summary, local_summary):
        summary.pop("packages")
    assert remote_summary == local_summary and remote_summary["sweeps"] == {"synthetic_sweep": {"space": "lambda_feat"}}
    for image in remote_summary["images"]:
        assert read_bytes(join(remote_report, image))[:8] == b"\x89PNG\r\n\x1a\n"


def read_bytes(where: str) -> bytes:
    filesystem, path = pyarrow.fs.FileSystem.from_uri(where)
    with filesystem.open_input_stream(path) as stream:
        return stream.read()

"""`devtools.send` says what is wrong without a traceback; `make demo` leaves nothing behind."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


def send(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devtools.send", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def no_stack(tmp_path) -> Path:
    """Settings pointing at a port nothing listens on: a local stack that is not running."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "ServiceBusConnection": f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
                                "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
        "CUSTOMER_EVENTS_QUEUE": "customer-events"}}))
    return path


def test_a_stack_that_is_not_running_is_reported_in_a_sentence(no_stack):
    out = send("--settings", str(no_stack), "created", "--customer", "acme", "--profile", "oem")
    assert out.returncode == 3
    assert "Traceback" not in out.stderr
    assert "is the local stack running?" in out.stderr and "make up" in out.stderr


def test_missing_files_and_missing_settings_are_reported_in_a_sentence(no_stack, tmp_path):
    out = send("--settings", str(no_stack), "file", str(tmp_path / "nope.json"))
    assert out.returncode == 2 and "no such file" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "broken.json").write_text("{not json")
    out = send("--settings", str(no_stack), "file", str(tmp_path / "broken.json"))
    assert out.returncode == 2 and "is not JSON" in out.stderr and "Traceback" not in out.stderr
    out = send("--settings", str(tmp_path / "missing.settings.json"), "removed", "--customer", "acme")
    assert out.returncode == 2 and "no such settings file" in out.stderr


def test_created_requires_customer_and_profile():
    out = send("created")
    assert out.returncode == 2
    assert "required: --customer, --profile" in out.stderr


def test_keep_warns_about_duplicate_detection_unless_the_message_id_is_new(no_stack):
    sample = ROOT / "schemas" / "samples" / "customer-created-oem.json"
    out = send("--settings", str(no_stack), "file", str(sample), "--keep")
    assert "duplicate detection" in out.stderr and "--new-message-id" in out.stderr
    out = send("--settings", str(no_stack), "file", str(sample), "--keep", "--new-message-id")
    assert "duplicate detection" not in out.stderr


def test_every_subcommand_has_a_description_and_shows_its_defaults():
    from devtools.send import build_parser
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "kind").choices
    assert set(subparsers) == {"created", "updated", "removed", "invalid", "file"}
    for name, sub in subparsers.items():
        assert sub.description, name
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)
                if not action.required and action.default not in (None, False) and action.option_strings:
                    assert "default" in action.help, (name, action.dest)


def test_demo_removes_its_folder_however_it_ends(monkeypatch, tmp_path):
    from devtools import demo
    from emulators.stack import LocalStack

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    def failing_start(self):
        (self.folder / "stack-secrets.json").write_text("{}")  # what a started stack leaves there
        seen.append(self.folder)
        raise RuntimeError("Azurite did not answer")

    monkeypatch.setattr(LocalStack, "start", failing_start)
    with pytest.raises(RuntimeError):
        demo.run_demo()
    assert seen and not seen[0].exists() and list(tmp_path.iterdir()) == []


def test_listen_prints_one_line_per_result_event_with_its_ids():
    from devtools.listen import one_line
    sample = json.loads((ROOT / "schemas" / "samples" / "result-customer-provisioned.json").read_text())
    line = one_line(sample)
    assert line.startswith("2026-11-26T09:00:03.000000Z customer.provisioned customer=globex")
    assert "auth0ClientId=tpc_4rTz9QmB1x7YkLp2" in line and "apimSubscriptionId=customer-globex" in line
    assert "plan=" not in line  # null fields are left out


def test_demo_help_prints_help_and_runs_nothing():
    out = subprocess.run([sys.executable, "-m", "devtools.demo", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m devtools.demo"), out.stdout + out.stderr
    assert "starting the local stack" not in out.stdout + out.stderr


def test_the_demo_ends_cleanly_and_its_summary_reads_right():
    """The whole demo, as `make demo` runs it: every step as expected, no warning from connections the stack had
    to force closed, and a summary that counts the dead-lettered bad event among the successes it is."""
    out = subprocess.run([sys.executable, "-m", "devtools.demo"], cwd=ROOT, capture_output=True, text=True,
                         timeout=55, env={**os.environ, "PYTHONPATH": str(ROOT)})
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "demo finished: every step ended as expected" in out.stdout
    assert "connection:forced" not in text and "WARNING azure" not in text, text
    summary = next(line for line in out.stdout.splitlines() if "function invocations:" in line)
    assert "succeeded (the bad event among them" in summary and summary.endswith(", 0 failed"), summary


def test_the_summary_explains_failures_only_when_there_are_some():
    from devtools.demo import invocations_line
    assert invocations_line({"succeeded": 5, "failed": 0}).endswith("5 succeeded (the bad event among them: the app "
                                                                     "dead-letters it itself on its first delivery), "
                                                                     "0 failed")
    assert "abandoned and delivered again" in invocations_line({"succeeded": 4, "failed": 1})

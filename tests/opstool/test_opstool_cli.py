"""The command line's contract: confirmation before acting on several messages, exit codes, help on every
subcommand."""
from __future__ import annotations

import subprocess
import sys

import pytest

from dlq_helpers import cloud_event, dead_letter_all, message_for, peek, send, view
from tests.terminal import run_on_terminal

SUBCOMMANDS = ("list", "show", "customers", "replay", "export", "purge")


def _two(servicebus, queue):
    events = [cloud_event("acme"), cloud_event("beta")]
    send(servicebus.connection_string, queue, *[message_for(e) for e in events])
    dead_letter_all(servicebus.connection_string, queue, "MaxDeliveryCountExceeded", "auth0 503", expected=2)
    return events


@pytest.mark.parametrize("command", ["replay", "purge"])
def test_no_confirmation_without_a_terminal_means_no_action(servicebus, queue, tool, tmp_path, command):
    _two(servicebus, queue)
    before = view(servicebus, queue)
    extra = ["--export", str(tmp_path / "x.jsonl")] if command == "purge" else []
    run = tool.run(command, "--queue", queue, "--all", *extra)  # stdin is /dev/null
    assert run.returncode == 2
    assert "without confirmation" in run.stderr and "--yes" in run.stderr
    assert view(servicebus, queue) == before
    assert not (tmp_path / "x.jsonl").exists()


def _with_terminal(tool, answer: bytes, *args):
    """Run the tool with a pseudo-terminal as stdin and type ``answer``."""
    argv = [sys.executable, "-m", "opstool", args[0], "--settings", str(tool.settings_file), "--no-ledger",
            *args[1:]]
    return run_on_terminal(argv, answer, cwd=tool.cwd, env=tool.env)


def test_the_prompt_asks_and_respects_the_answer(servicebus, queue, tool):
    events = _two(servicebus, queue)
    before = view(servicebus, queue)
    code, out, err = _with_terminal(tool, b"n\n", "replay", "--queue", queue, "--all")
    assert code == 1
    assert "Replay 2 dead-lettered messages to queue" in err and "[y/N]" in err
    assert "aborted: nothing was changed" in err
    assert view(servicebus, queue) == before

    code, out, err = _with_terminal(tool, b"y\n", "replay", "--queue", queue, "--all")
    assert code == 0, err
    assert "replay summary: 2 replayed" in out
    assert len(peek(servicebus.connection_string, queue)) == len(events)


def test_one_message_needs_no_confirmation(servicebus, queue, tool):
    _two(servicebus, queue)
    run = tool.run("replay", "--queue", queue, "--customer", "acme")
    assert run.returncode == 0, run.stderr
    assert "replay summary: 1 replayed" in run.stdout


@pytest.mark.parametrize("args,needle", [
    (["replay"], "say which messages"),
    (["purge", "--export", "x.jsonl"], "say which messages"),
    (["replay", "--all", "--seq", "3"], "do not combine"),
    (["list", "--older-than", "3 days"], "is not a duration"),
    (["list", "--limit", "0"], "--limit"),
    (["purge", "--all", "--export", "-"], "real file"),
    (["replay", "--bogus"], "unrecognized arguments"),
    (["show", "not-a-number"], "invalid int value"),
])
def test_usage_errors_exit_2_and_say_why(servicebus, queue, tool, args, needle):
    run = tool.run(args[0], "--queue", queue, *args[1:])
    assert run.returncode == 2
    assert needle in run.stderr


def test_missing_connection_settings_exit_2(tool):
    env = {k: v for k, v in tool.env.items() if k != "ServiceBusConnection"}
    tool.env = env
    run = tool.run("list")
    assert run.returncode == 2
    assert "no Service Bus connection" in run.stderr


def test_connection_and_authorization_errors_exit_3(servicebus, queue, tool):
    refused = "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"
    run = tool.run("list", "--connection-string", refused)
    assert run.returncode == 3 and "error: cannot use queue" in run.stderr

    wrong_key = servicebus.connection_string.replace("SharedAccessKey=", "SharedAccessKey=wrong")
    run = tool.run("list", "--queue", queue, "--connection-string", wrong_key)
    assert run.returncode == 3 and "ServiceBusAuthenticationError" in run.stderr
    assert "wrong" not in run.stderr  # the key is never printed

    run = tool.run("replay", "--queue", "no-such-queue", "--all", "--yes")
    assert run.returncode == 3 and "no-such-queue" in run.stderr


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help_with_the_exit_codes(tool, command):
    run = tool.run(command, "--help")
    assert run.returncode == 0
    assert "exit codes:" in run.stdout and "3  Service Bus connection" in run.stdout
    assert "--queue" in run.stdout and "--connection-string" in run.stdout


def test_top_level_help_lists_the_subcommands(tool):
    run = subprocess.run([sys.executable, "-m", "opstool", "--help"], cwd=tool.cwd, env=tool.env,
                         capture_output=True, text=True)
    assert run.returncode == 0
    for command in SUBCOMMANDS:
        assert command in run.stdout
    assert "exit codes:" in run.stdout

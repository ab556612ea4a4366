"""Issue 23, cases 10-12, for the commands that need only Service Bus and the ledger: the backfill reader's lines,
a profile that disagrees with the ledger, a ledger that cannot be reached (one line, exit 3, everywhere), and a
rotation that refuses to act without a terminal unless --yes. (drift's share of the cases, which needs the whole
local stack, is in tests/e2e/test_ownership_and_partial_changes.py.)"""
from __future__ import annotations

import json

import pytest

from dlq_helpers import peek
from opstool.backfill_rows import INVALID, ProfileRules, read_rows, validate
from shared.domain.records import PROVISIONED, CustomerRecord

RULES = ProfileRules(frozenset({"oem", "partner-web"}), frozenset(), frozenset({"oem", "partner-web"}))
#: a connection string whose ledger nobody listens on
NO_LEDGER = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1"
             "OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1")


def _row(customer: str, **extra) -> str:
    return json.dumps({"customerId": customer, "displayName": customer.title(), "profile": "oem", **extra},
                      ensure_ascii=False)


def _read(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    rows = read_rows(path, None)
    validate(rows, "batch", "", RULES)
    return {r.line: r for r in rows}


# ---- case 10: the reader --------------------------------------------------------------------------------------------
def test_case10_backfill_lines_end_at_line_feeds_and_each_bad_row_is_one_invalid_row(tmp_path):
    """Before: a row nested 100,000 deep was a RecursionError traceback, a U+2028 or a form feed split a row in two
    (every later row one line off), and one line that is not UTF-8 made the whole file unreadable."""
    lines = [_row("acme"), "[" * 100_000 + "]" * 100_000, _row("beta", displayName="Beta\u2028Corp"),
             _row("gamma", displayName="Gamma\x0cCorp"), _row("delta")]
    data = "\n".join(lines).encode() + b"\n" + b'{"customerId": "eps\xff"}\n' + _row("zeta").encode() + b"\r\n"
    rows = _read(tmp_path, "rows.jsonl", data)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    assert rows[2].plan == INVALID and "nest 100000 deep" in rows[2].problem
    assert rows[3].data.get("customerId") == "beta"  # one row, its U+2028 kept in the value
    assert rows[4].plan == INVALID and rows[4].problem.startswith("data.displayName")  # the form feed refused
    assert rows[6].plan == INVALID and "not valid UTF-8" in rows[6].problem
    assert [n for n, r in rows.items() if r.plan != INVALID] == [1, 3, 5, 7]
    assert rows[7].customer_id == "zeta"  # CRLF ends a line too


def test_case10_csv_cells_with_a_form_feed_or_u2028_stay_in_their_row(tmp_path):
    data = ("customerId,displayName,profile\nacme,Acme\x0cCorp,oem\nbeta,Beta\u2028Corp,oem\n"
            'gamma,"Gamma\nCorp",oem\ndelta,Delta,oem\n').encode() + b"eps,\xffx,oem\nzeta,Zeta,oem\n"
    rows = _read(tmp_path, "rows.csv", data)
    assert rows[2].plan == INVALID and rows[2].problem.startswith("data.displayName")
    assert rows[3].customer_id == "beta" and rows[4].customer_id == "gamma"  # a quoted newline spans two lines
    assert rows[6].customer_id == "delta" and rows[6].plan != INVALID
    assert rows[7].plan == INVALID and "not valid UTF-8" in rows[7].problem and rows[8].customer_id == "zeta"


def test_case10_a_row_for_a_customer_the_ledger_has_with_another_profile_is_a_failure(tool, ledger, azurite,
                                                                                       tmp_path, queue):
    tool.use_ledger(ledger, azurite)
    ledger.create_customer(CustomerRecord(customer_id="acme", status=PROVISIONED, profile="partner-web",
                                          auth0_client_id="tpc_x"))
    ledger.create_customer(CustomerRecord(customer_id="beta", status=PROVISIONED, profile="oem",
                                          auth0_client_id="tpc_y"))
    path = tmp_path / "rows.jsonl"
    path.write_text(_row("acme") + "\n" + _row("beta") + "\n", encoding="utf-8")
    for extra in (["--dry-run"], ["--yes", "--wait", "0"]):
        run = tool.run("backfill", str(path), "--queue", queue, *extra)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "line 1 acme: in the ledger with profile 'partner-web', the row says 'oem'" in run.stdout
        assert "1 already in the ledger" in run.stdout  # beta: the same profile, already there
    assert peek(tool.servicebus.connection_string, queue) == []  # nothing sent


# ---- cases 10 and 11: a ledger that cannot be reached ----------------------------------------------------------------
@pytest.mark.parametrize("command", [["customers"], ["backfill", "rows.jsonl", "--dry-run"],
                                     ["backfill", "rows.jsonl", "--yes"]])
def test_case11_an_unreachable_ledger_is_one_line_and_exit_3(tool, tmp_path, command):
    (tmp_path / "rows.jsonl").write_text(_row("acme") + "\n", encoding="utf-8")
    tool.env.update(LEDGER_CONNECTION=NO_LEDGER, LEDGER_TABLE="ledger")
    run = tool.run(*command)
    assert run.returncode == 3, run.stdout + run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ledger" in errors[0] and "Traceback" not in run.stderr


# ---- case 12: a rotation asks, and refuses without a terminal --------------------------------------------------------
def test_case12_rotate_refuses_without_a_terminal_unless_yes(tool, queue):
    run = tool.run("rotate", "--queue", queue, "--customer", "acme")
    assert run.returncode == 2 and "without confirmation" in run.stderr and "--yes" in run.stderr
    assert peek(tool.servicebus.connection_string, queue) == []
    run = tool.run("rotate", "--queue", queue, "--customer", "acme", "--yes")
    assert run.returncode == 0, run.stderr
    assert len(peek(tool.servicebus.connection_string, queue)) == 1


def test_case12_rotate_asks_on_a_terminal(tool, queue):
    from test_opstool_cli import _with_terminal

    code, _, err = _with_terminal(tool, b"n\n", "rotate", "--queue", queue, "--customer", "acme")
    assert code == 1 and "Rotate the client secret of customer acme" in err and "aborted" in err
    assert peek(tool.servicebus.connection_string, queue) == []
    code, _, err = _with_terminal(tool, b"y\n", "rotate", "--queue", queue, "--customer", "acme")
    assert code == 0, err
    assert len(peek(tool.servicebus.connection_string, queue)) == 1

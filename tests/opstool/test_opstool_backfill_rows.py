"""The backfill's reading and validation, without a queue: every bad row found with its line number and rule, ids
derived from the batch, the customer and the row."""
from __future__ import annotations

import json

import pytest

from opstool.backfill_rows import COLUMNS, INVALID, ProfileRules, event_id_of, read_rows, validate
from opstool.errors import UsageError
from shared.domain.events import CREATED_DATA

RULES = ProfileRules(frozenset({"oem", "partner-web", "web-required"}), frozenset({"web-required"}))


def _rows(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    rows = read_rows(path, None)
    validate(rows, "batch", "", RULES)
    return rows


def test_csv_bad_rows_carry_their_line_and_rule(tmp_path):
    rows = _rows(tmp_path, "c.csv", "\n".join([
        "customerId,displayName,profile,redirectUris,existingClientId",
        "acme,Acme,oem,,",
        "",                                            # a blank line is skipped, and still counted
        "globex,Globex,reseller,,",
        "bad id,Bad,oem,,",
        'initech,"Initech, Inc.",partner-web,https://a.example/cb https://b.example/cb,',
        "hooli,Hooli,web-required,,",
        "acme,Acme again,oem,,",
        "umbrella,Umbrella,oem,,tpc_../x",
        "short,row",
    ]) + "\n")
    bad = {r.line: r.problem for r in rows if r.plan == INVALID}
    assert set(bad) == {4, 5, 7, 8, 9, 10}
    assert "unknown profile 'reseller'" in bad[4]
    assert bad[5].startswith("data.customerId:")
    assert bad[7] == "data.redirectUris: is required by profile 'web-required'"
    assert bad[8] == "data.customerId: appears again in this file (first at line 2)"
    assert bad[9].startswith("data.existingClientId:")
    assert "2 cells" in bad[10]
    good = [r for r in rows if r.plan != INVALID]
    assert [r.line for r in good] == [2, 6]
    assert good[1].data["redirectUris"] == ["https://a.example/cb", "https://b.example/cb"]
    assert good[1].data["displayName"] == "Initech, Inc."


def test_jsonl_rows_and_their_lines(tmp_path):
    lines = [json.dumps({"customerId": "acme", "displayName": "Acme", "profile": "oem"}), "{not json",
             json.dumps(["a"]), json.dumps({"customerId": "b", "displayName": "B", "profile": "oem", "color": "x"})]
    rows = _rows(tmp_path, "c.jsonl", "\n".join(lines) + "\n")
    bad = {r.line: r.problem for r in rows if r.plan == INVALID}
    assert set(bad) == {2, 3, 4} and "not valid JSON" in bad[2] and "JSON object" in bad[3]
    assert bad[4].startswith("data.color: is not part of customer.created")


@pytest.mark.parametrize("header,words", [("customerId,displayName,profile,colour", "unknown column"),
                                          ("customerId,displayName", "lacks the column"),
                                          ("customerId,displayName,profile,profile", "twice")])
def test_a_bad_header_is_a_usage_error_before_any_row(tmp_path, header, words):
    path = tmp_path / "c.csv"
    path.write_text(header + "\nacme,Acme,oem,x\n", encoding="utf-8")
    with pytest.raises(UsageError, match=words):
        read_rows(path, None)


def test_event_ids_are_stable_per_row_and_change_with_it():
    row = {"customerId": "acme", "displayName": "Acme", "profile": "oem"}
    assert event_id_of("b", row) == event_id_of("b", dict(reversed(list(row.items()))))
    assert event_id_of("b", row) != event_id_of("c", row)
    assert event_id_of("b", row) != event_id_of("b", {**row, "profile": "partner-web"})
    assert len(event_id_of("b", row)) <= 128


def test_the_columns_are_the_created_events_data_fields():
    assert set(COLUMNS) == CREATED_DATA

"""docs/RUNBOOK.md shows what the tools print: its incident is played on a private local stack (the app under the
local host, the ops tool as processes, on a terminal where the runbook shows one) and every generated block is
compared with the fresh output. A change that alters an output fails here until `python -m devtools.runbook
--write` has put the new output in the runbook."""
from __future__ import annotations

import pytest

from devtools.runbook.blocks import RUNBOOK, differences, normalise, read_blocks, write_blocks

pytestmark = pytest.mark.timeout(600)


def test_the_runbook_shows_what_the_tools_print_now():
    from devtools.runbook.drills import capture

    problems = differences(RUNBOOK.read_text(encoding="utf-8"), capture())
    assert not problems, ("docs/RUNBOOK.md is stale; run `python -m devtools.runbook --write` and read the diff:\n\n"
                          + "\n\n".join(problems))


def test_a_changed_output_is_reported_and_volatile_values_are_not():
    text = "<!-- output: x -->\n```\n$ python -m opstool list\nSEQ  DLV\n  9    1\n```\n"
    same = "$ python -m opstool list\nSEQ DLV\n 12 1"                    # another sequence number, other widths
    assert differences(text, {"x": same}) == []
    [problem] = differences(text, {"x": "$ python -m opstool list\nSEQ  DLV\n  9    0"})  # a delivery count
    assert problem.startswith("x: the runbook no longer shows") and "-<seq> 1" in problem and "+<seq> 0" in problem
    assert differences(text, {}) == ["x: in docs/RUNBOOK.md but the drills do not capture it"]
    assert read_blocks(write_blocks(text, {"x": same})) == {"x": same + "\n"}


def test_ids_times_and_ports_are_masked_but_reason_codes_and_id_shapes_are_kept():
    a = ("message retry-90fcaa8bd7e05d30-8 at 2026-12-07T23:41:43.408Z on 127.0.0.1:42205 "
         "id 1e216db4-c6d6-40ae-8da9-4bb7555a3f96 RetryBudgetSpent")
    b = ("message retry-1234abcd5678ef90-8 at 2026-11-26T14:50:52.705Z on 127.0.0.1:41997 "
         "id 37d0d29c-2186-4a2b-b997-8f66c27cfc0f RetryBudgetSpent")
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(b.replace("retry-1234abcd5678ef90-8", "37d0d29c:retry:8"))
    assert normalise(a) != normalise(b.replace("RetryBudgetSpent", "MaxDeliveryCountExceeded"))

"""The generated blocks of docs/RUNBOOK.md: where they are, how a fresh capture is written in, and how the runbook
is compared with one.

A generated block is a fenced code block right after a marker line ``<!-- output: NAME -->``; the capture
(:mod:`.drills`) produces its text under the same name. ``--write`` replaces each block's body with the capture;
``--check`` compares them after :func:`normalise`, which masks only what changes from one real run to the next
(ids, times, ports, sequence numbers, Auth0's generated ids, column widths) and keeps everything a behaviour change
would alter: reason codes, wording, delivery counts, exit codes, the shape of ids such as ``retry-<hash>-8``.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md"
MARKER = re.compile(r"^<!-- output: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)^```$", re.M | re.S)

#: (pattern, replacement), applied in order: what differs between two real runs of the same drill
VOLATILE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f-]{0,9}…"), "<uuid>…"),              # a uuid cut to its column
    (re.compile(r"\bretry-[0-9a-f]{6,}-"), "retry-<hash>-"),
    (re.compile(r"\bretry-[0-9a-f]+…"), "retry-<hash>…"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"), "<time>"),
    (re.compile(r"\b\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?\b"), "<time>"),
    (re.compile(r"\b\d{13}\b"), "<epoch-ms>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "<namespace>"),
    (re.compile(r"\b(tpc|cgr|con)_[A-Za-z0-9]{8,}"), r"<\1>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<hex>"),
    (re.compile(r"(Duration=)\d+ms"), r"\1<n>ms"),
    (re.compile(r"(duration_ms=)\d+"), r"\1<n>"),
    (re.compile(r"(delay_s=)[\d.]+"), r"\1<n>"),
    # sequence numbers: the handle of show/replay/purge, and the first column of list
    (re.compile(r"\b(seq|show|message|sequence number|sequence_number\"?:?|x-opt-sequence-number\"?:?)(\s+)\d+\b"),
     r"\1\2<seq>"),
    (re.compile(r"^ {0,3}\d+(?=[ \t])", re.M), "<seq>"),  # right-aligned under SEQ; by-reason counts sit deeper
    # an export file's size and date in `ls -l`
    (re.compile(r"^(-[rwx-]{9})\s+\d+\s+\S+\s+\S+\s+\d+\s+\w{3}\s+\d+\s+[\d:]+\s", re.M), r"\1 <ls> "),
    (re.compile(r"[ \t]+"), " "),                                            # column widths
]


def normalise(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def read_blocks(text: str) -> dict[str, str]:
    blocks: dict[str, str] = {}
    for match in MARKER.finditer(text):
        if match.group(1) in blocks:
            raise ValueError(f"docs/RUNBOOK.md: two blocks named {match.group(1)!r}")
        blocks[match.group(1)] = match.group(2)
    return blocks


def write_blocks(text: str, captured: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in captured:
            return match.group(0)
        head = match.group(0)[:match.start(2) - match.start(0)]
        return head + captured[name].strip("\n") + "\n```"
    return MARKER.sub(replace, text)


def differences(text: str, captured: dict[str, str]) -> list[str]:
    """One entry per block that the capture contradicts (or that either side lacks), with a diff."""
    blocks = read_blocks(text)
    problems = []
    for name in sorted(blocks.keys() | captured.keys()):
        if name not in captured:
            problems.append(f"{name}: in docs/RUNBOOK.md but the drills do not capture it")
            continue
        if name not in blocks:
            problems.append(f"{name}: captured, but docs/RUNBOOK.md has no block <!-- output: {name} -->")
            continue
        want, got = normalise(blocks[name]), normalise(captured[name])
        if want != got:
            diff = "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(), "docs/RUNBOOK.md",
                                                  "this run", lineterm="", n=1))
            problems.append(f"{name}: the runbook no longer shows what the tools print\n{diff}")
    return problems

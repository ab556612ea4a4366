"""`make setup`'s pip install, with progress instead of a minute of silence (and without pip's hundred lines).

    .venv/bin/python devtools/install_progress.py -r requirements-dev.txt

Runs ``python -m pip install`` (this interpreter's) and condenses what pip says into a few lines: one per stage
(collecting, downloading, installing, done) and, while a stage lasts, a line every 15 s with the packages seen so
far, so a slow network shows as slow rather than stuck. On a terminal the progress is one line rewritten in place.
pip's warnings are counted and the first is shown; when pip fails, everything it said is printed. Standard library
only: it runs before anything is installed.
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

HEARTBEAT_SECONDS = 15.0
_COLLECTING = re.compile(r"^Collecting (\S+)")
_DOWNLOADING = re.compile(r"^\s*Downloading \S+ \(([\d.]+) ([kMG]?B)\)")
_INSTALLING = re.compile(r"^Installing collected packages: (.*)")
_SATISFIED = re.compile(r"^Requirement already satisfied: (\S+)")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


class Progress:
    """What pip has done so far, from its output lines."""

    def __init__(self) -> None:
        self.stage = "collecting"
        self.collected = self.downloaded = self.satisfied = self.to_install = 0
        self.bytes = 0.0
        self.warnings: list[str] = []
        self.lines: list[str] = []

    def feed(self, line: str) -> str | None:
        """Take one line of pip's output; returns a stage line to print when the stage changes."""
        self.lines.append(line)
        if line.startswith("WARNING:"):
            self.warnings.append(line.strip())
        elif m := _COLLECTING.match(line):
            self.collected += 1
        elif m := _DOWNLOADING.match(line):
            self.downloaded += 1
            self.bytes += float(m.group(1)) * _UNITS.get(m.group(2), 1)
        elif _SATISFIED.match(line):
            self.satisfied += 1
        elif m := _INSTALLING.match(line):
            self.to_install = len([p for p in m.group(1).split(",") if p.strip()])
            self.stage = "installing"
            return f"  installing {self.to_install} package(s) ({self.summary()})"
        return None

    def summary(self) -> str:
        parts = [f"{self.collected} collected"]
        if self.downloaded:
            parts.append(f"{self.downloaded} downloaded, {self.bytes / 1e6:.1f} MB")
        if self.satisfied:
            parts.append(f"{self.satisfied} already installed")
        return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    tty = sys.stdout.isatty()
    started = time.monotonic()
    progress = Progress()
    print(f"  pip install {' '.join(args)}: collecting (the first set-up takes a minute or two)", flush=True)
    proc = subprocess.Popen([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                             "--progress-bar", "off", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(2.0 if tty else HEARTBEAT_SECONDS):
            line = f"  ... {progress.stage}: {progress.summary()}, {time.monotonic() - started:.0f} s"
            print(f"\r{line:<100}" if tty else line, end="" if tty else "\n", flush=True)

    threading.Thread(target=heartbeat, daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        stage = progress.feed(line.rstrip("\n"))
        if stage:
            print(("\r" + " " * 100 + "\r" if tty else "") + stage, flush=True)
    code = proc.wait()
    done.set()
    if tty:
        print("\r" + " " * 100 + "\r", end="")
    elapsed = time.monotonic() - started
    if code:
        print("\n".join(progress.lines), file=sys.stderr)
        print(f"  pip failed (exit {code}) after {elapsed:.0f} s: its whole output is above", file=sys.stderr)
        return code
    if progress.warnings:
        print(f"  pip warned {len(progress.warnings)} time(s), e.g. {progress.warnings[0]}")
    installed = f"{progress.to_install} package(s) installed" if progress.to_install else "nothing new to install"
    print(f"  done in {elapsed:.0f} s: {installed} ({progress.summary()})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

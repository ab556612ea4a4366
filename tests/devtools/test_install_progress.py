"""`make setup` shows progress: pip's output condensed to a line per stage, its failure in full."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "devtools" / "install_progress.py"

PIP_OUTPUT = """\
WARNING: Location 'file:///opt/pypi/simple/azure-functions/' is ignored: it is neither a file nor a directory.
Collecting azure-functions==2.3.0 (from -r requirements.txt (line 1))
  Downloading azure_functions-2.3.0-py3-none-any.whl (120 kB)
Collecting grpcio (from -r requirements.txt (line 9))
  Downloading grpcio-1.70.0-cp313-cp313-manylinux_2_17_x86_64.whl (5.9 MB)
Requirement already satisfied: packaging in ./.venv/lib/python3.13/site-packages (from pytest) (24.1)
Installing collected packages: grpcio, azure-functions
Successfully installed azure-functions-2.3.0 grpcio-1.70.0
"""


def test_pip_output_becomes_a_line_per_stage():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from install_progress import Progress
    finally:
        sys.path.remove(str(SCRIPT.parent))
    progress = Progress()
    stages = [s for s in map(progress.feed, PIP_OUTPUT.splitlines()) if s]
    assert stages == ["  installing 2 package(s) (2 collected, 2 downloaded, 6.0 MB, 1 already installed)"]
    assert progress.warnings == [PIP_OUTPUT.splitlines()[0]]


def test_a_run_says_what_it_did_in_a_few_lines_and_a_failure_in_full():
    ok = subprocess.run([sys.executable, str(SCRIPT), "pytest"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("  pip install pytest: collecting") and len(lines) <= 3, lines
    assert lines[-1].startswith("  done in ") and "nothing new to install (0 collected, " in lines[-1]
    bad = subprocess.run([sys.executable, str(SCRIPT), "--no-index", "no-such-package-for-issue-28"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "No matching distribution found for no-such-package-for-issue-28" in bad.stderr  # pip's own words
    assert "pip failed (exit 1)" in bad.stderr

"""Running a command with a pseudo-terminal as its standard input, to answer a confirmation prompt as a person
would (a command that deletes or rotates asks on a terminal and refuses without one)."""
from __future__ import annotations

import os
import pty
import subprocess


def run_on_terminal(argv: list[str], answer: bytes, *, cwd, env: dict, timeout: float = 90) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``argv`` with ``answer`` typed on its terminal."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    os.close(secondary)
    try:
        os.write(primary, answer)
        out, err = proc.communicate(timeout=timeout)
    finally:
        os.close(primary)
    return proc.returncode, out, err

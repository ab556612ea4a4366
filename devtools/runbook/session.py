"""A private local stack with the app running under the local Functions host, and the runbook's commands run on it
as an on-call engineer types them: each as its own process, with the stack's settings in the environment (so no
``--settings`` is needed), in a scratch folder for the files they write, on a terminal where the runbook shows one.
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: short retry delays: the app's real retry path (8 attempts, then RetryBudgetSpent) in seconds instead of minutes
RETRY_SETTINGS = {"RETRY_BASE_SECONDS": "0.05", "RETRY_MAX_DELAY_SECONDS": "0.2"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Session:
    def __init__(self) -> None:
        from emulators.stack import LocalStack, StackOptions, write_local_settings

        self.scratch = Path(tempfile.mkdtemp(prefix="runbook-"))
        self.work = self.scratch / "work"
        self.work.mkdir()
        self.stack = LocalStack(self.scratch / "stack", StackOptions()).start()
        (self.stack.folder / "stack.json").write_text(json.dumps(self.stack.describe()))
        self.values = {**self.stack.settings, **RETRY_SETTINGS}
        self.settings_file = self.scratch / "local.settings.json"
        write_local_settings(self.values, self.settings_file)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AZURE_", "MSI_", "IDENTITY_", "OPSTOOL_")) and k not in self.values}
        self.env.update(self.values, PYTHONPATH=str(ROOT), COLUMNS="200")
        self.host_log = self.scratch / "host.log"
        self.host: subprocess.Popen | None = None

    # -- the app ----------------------------------------------------------------------------------------------
    def start_host(self) -> None:
        log = open(self.host_log, "ab")
        self.host = subprocess.Popen([sys.executable, "-m", "funchost", "--app-root", str(ROOT), "--settings",
                                      str(self.settings_file), "--functions", "customer_events"], cwd=ROOT,
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        auth0 = self.stack.control("auth0")
        auth0.clear_calls()
        wait_until(lambda: "Host started" in self.log_text() or self.host.poll() is not None,
                   timeout=90, what="the app to start")
        if self.host.poll() is not None:
            raise RuntimeError("the local host stopped:\n" + self.log_text()[-3000:])
        # The warm-up's own line is not in the host's log (the host drops what a worker logs outside an
        # invocation): its token call is what shows it is done.
        wait_until(lambda: auth0.calls()["calls"].get("oauth.token"), timeout=60, what="the app to warm up")

    def log_text(self) -> str:
        return self.host_log.read_text(errors="replace") if self.host_log.exists() else ""

    def close(self) -> None:
        import shutil
        if self.host is not None and self.host.poll() is None:
            self.host.terminate()
            try:
                self.host.wait(20)
            except subprocess.TimeoutExpired:
                self.host.kill()
        self.stack.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -- the commands -----------------------------------------------------------------------------------------
    def run(self, command: str, *, tty: bool = False, answer: str | None = None, env: dict | None = None,
            run_as: str | None = None, exit_code: bool = False) -> str:
        """``command`` as typed (``python -m ...``, ``< /dev/null`` allowed), its transcript: ``$ command``, what
        it printed, and ``$ echo $?`` with the code when ``exit_code``. ``run_as`` is the command really run when
        it differs only in what the reader needs not type (the stack's folder)."""
        argv = shlex.split(run_as or command)
        stdin = subprocess.DEVNULL
        if argv[-2:] == ["<", "/dev/null"]:
            argv = argv[:-2]
        argv = [sys.executable if a == "python" else a for a in argv]
        env = {**self.env, **(env or {})}
        if tty:
            code, out = self._on_terminal(argv, env, answer)
        else:
            done = subprocess.run(argv, cwd=self.work, env=env, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, timeout=180)
            code, out = done.returncode, done.stdout
        text = f"$ {command}\n{out.rstrip()}"
        if exit_code:
            text += f"\n$ echo $?\n{code}"
        self.last_code = code
        return text

    def _on_terminal(self, argv: list[str], env: dict, answer: str | None) -> tuple[int, str]:
        """Run on a pseudo-terminal (stdin, stdout and stderr), answering the tool's question; the transcript as a
        terminal shows it, a line rewritten in place (a progress counter) shown as it ends."""
        master, slave = pty.openpty()
        proc = subprocess.Popen(argv, cwd=self.work, env={**env, "TERM": "dumb"}, stdin=slave, stdout=slave,
                                stderr=slave, close_fds=True)
        os.close(slave)
        chunks: list[bytes] = []
        answered = answer is None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
                if not answered and b"[y/N]" in b"".join(chunks):
                    os.write(master, (answer + "\n").encode())
                    answered = True
            elif proc.poll() is not None:
                break
        os.close(master)
        code = proc.wait(30)
        text = _ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r\n", "\n")
        # A line rewritten in place (\r) shows as it ended; the terminal echoes the answer after the question.
        lines = [next((part for part in reversed(line.split("\r")) if part.strip()), "") for line in text.split("\n")]
        return code, "\n".join(lines)

    # -- looking at the stack ---------------------------------------------------------------------------------
    def dead_lettered(self) -> list[dict]:
        return self.stack.servicebus.snapshot()["queues"]["customer-events"]["dead_letter_messages"]

    def wait_dead_lettered(self, count: int, timeout: float = 90) -> list[dict]:
        return wait_until(lambda: (lambda d: d if len(d) >= count else None)(self.dead_lettered()),
                          timeout=timeout, what=f"{count} dead-lettered message(s)")

    def status(self, customer: str) -> str | None:
        from shared.adapters.table_ledger import TableLedger
        from shared.settings import LedgerSettings
        record = TableLedger.from_settings(LedgerSettings.load(self.values)).get_customer(customer)[0]
        return record.status if record else None

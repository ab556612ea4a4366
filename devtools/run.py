"""`make run` and `make host`: the local Functions host on the local stack, one per checkout.

    python -m devtools.run              start the stack if it is not running (state kept), then run the host
    python -m devtools.run --host-only  run the host on the stack that is already running (`make host`)

Ctrl-C stops the host only. The stack keeps running with its queue, dead-letter queue, ledger and the stand-ins'
objects, so a fixed profile can be tried on the very messages that failed: edit, Ctrl-C, `make host`, replay.
`make down` stops the stack (its state is kept on disk), `make reset` forgets the state.

A second `make run` or `make host` in the same checkout refuses and names the running one: nothing here ever
stops a stack, and two hosts never compete for the same queue.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = ROOT / ".localstack"


def _running_stack(folder: Path) -> dict | None:
    from emulators.appsettings import running_stack
    return running_stack(folder)


def _settings_ready(folder: Path, settings: str) -> bool:
    """The settings file the host reads is there: written again from the running stack when it went missing
    (deleted, or a `git clean`), rather than a host that starts and stops on "settings file not found"."""
    from emulators.appsettings import restore_settings
    try:
        restored = restore_settings(folder, settings)
    except FileNotFoundError as exc:
        print(f"cannot start the app: {exc}", file=sys.stderr)
        return False
    if restored:
        print(restored, flush=True)
    return True


def after_host(now: dict | None) -> str:
    """What the stack does now that the host stopped, and the commands that work from here."""
    if now:
        return (f"the local stack keeps running (pid {now['pid']}) with its queue, dead-letter queue and state:\n"
                "  `make host` restarts only the app, `make down` stops the stack (state kept), `make reset` forgets "
                "the state")
    return ("the local stack is not running now; its queue, dead-letter queue and state are kept on disk:\n"
            "  `make run` starts the stack and the app again (`make up` the stack alone), `make reset` forgets the "
            "state")


def refusal(holder: dict, folder: Path) -> str:
    pid = holder.get("pid") or "?"
    started = f", started {holder['started']}" if holder.get("started") else ""
    return (f"a local Functions host already runs from this checkout (pid {pid}{started}, "
            f"`{holder.get('what', 'make run')}` in another terminal); not starting a second one.\n"
            f"  Its log is in that terminal. It and the stack keep running; from here you can:\n"
            f"    send events:      .venv/bin/python -m devtools.send created --customer acme --profile oem\n"
            f"    see the state:    .venv/bin/python -m emulators show\n"
            f"    list dead letters .venv/bin/python -m opstool list\n"
            f"  To restart the host (after a config change): Ctrl-C in its terminal, then `make host`.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host-only", action="store_true",
                   help="use the running stack, do not start one (what `make host` runs)")
    p.add_argument("--folder", default=str(DEFAULT_FOLDER), help="stack folder (default: %(default)s)")
    p.add_argument("--settings", default=str(ROOT / "local.settings.json"),
                   help="app settings the stack writes and the host reads (default: %(default)s)")
    p.add_argument("--servicebus-connection", metavar="CONNECTION_STRING",
                   help="passed to `python -m emulators up`: another Service Bus than the stand-in")
    p.add_argument("--servicebus-namespace", metavar="FQDN",
                   help="passed to `python -m emulators up`: a namespace reached with DefaultAzureCredential")
    p.add_argument("--log-level", default="INFO", help="the host's console level (default: %(default)s)")
    args = p.parse_args(argv)

    from emulators.runlock import HostLock
    folder = Path(args.folder).resolve()
    what = "make host" if args.host_only else "make run"
    lock = HostLock(folder)
    if not lock.acquire(what):
        print(refusal(lock.holder() or {}, folder), file=sys.stderr)
        return 3
    with lock:
        if args.host_only:
            info = _running_stack(folder)
            if info is None:
                print(f"no local stack is running from {folder}: `make run` starts the stack and the host",
                      file=sys.stderr)
                return 2
        else:
            up = [sys.executable, "-m", "emulators", "--folder", str(folder), "up", "--persist",
                  "--settings", args.settings]
            if args.servicebus_connection:
                up += ["--servicebus-connection", args.servicebus_connection]
            if args.servicebus_namespace:
                up += ["--servicebus-namespace", args.servicebus_namespace]
            code = subprocess.run(up, cwd=ROOT).returncode
            if code:
                return code
        if not _settings_ready(folder, args.settings):
            return 2
        print("send events from another terminal: .venv/bin/python -m devtools.send created --customer acme "
              "--profile oem\nsee what the stand-ins hold: .venv/bin/python -m emulators show", flush=True)
        from funchost.__main__ import main as host_main
        try:
            code = host_main(["--app-root", str(ROOT), "--settings", args.settings, "--log-level", args.log_level])
        finally:
            # Read again: the stack may have been stopped or restarted meanwhile.
            print("\n" + after_host(_running_stack(folder)), flush=True)
        return code


if __name__ == "__main__":
    sys.exit(main())

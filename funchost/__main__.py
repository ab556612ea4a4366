"""``python -m funchost``: run the app's Service Bus and timer triggers until SIGINT/SIGTERM.

    python -m funchost [--app-root .] [--settings local.settings.json] [--script function_app.py]
                       [--functions name,...] [--log-level INFO] [--state-dir DIR] [--stop-timeout 30]

Like ``func start``: local.settings.json ``Values`` go into the environment unless a variable is already set,
the worker's working directory is the app root, and Ctrl+C stops receiving, lets running invocations finish
(up to --stop-timeout seconds) and exits.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .host import LocalFunctionsHost
from .logs import configure_console_logging
from .settings import load_local_settings

log = logging.getLogger("funchost")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m funchost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-root", default=".", help="directory holding function_app.py and host.json")
    parser.add_argument("--settings", help="local.settings.json to read (default: <app-root>/local.settings.json)")
    parser.add_argument("--script", help="app script (default: $PYTHON_SCRIPT_FILE_NAME or function_app.py)")
    parser.add_argument("--functions", help="comma-separated function names to run (default: all)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING... (default INFO)")
    parser.add_argument("--state-dir", help="where the host keeps the timers' schedule status between runs "
                                            "(default: <app-root>/.localstack/funchost)")
    parser.add_argument("--placeholder", action="store_true",
                        help="start the worker as a pre-warmed instance (no app, no app settings), then specialise "
                             "it with the app and its settings, as Azure does on a cold start")
    parser.add_argument("--stop-timeout", type=float, default=30.0,
                        help="seconds running invocations get to finish at shutdown (default 30)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_console_logging(args.log_level)
    app_root = Path(args.app_root).resolve()
    settings_path = Path(args.settings).resolve() if args.settings else app_root / "local.settings.json"
    settings: dict[str, str] = {}
    if settings_path.exists():
        settings = load_local_settings(settings_path)
    elif args.settings:
        log.error("settings file not found: %s", settings_path)
        return 2
    else:
        log.warning("%s not found: using the environment only", settings_path)

    os.chdir(app_root)  # the Python worker runs with the app root as its working directory
    functions = [f.strip() for f in args.functions.split(",") if f.strip()] if args.functions else None
    host = LocalFunctionsHost(app_root, settings, functions=functions, script_file=args.script,
                              state_dir=args.state_dir, placeholder=args.placeholder)

    stop_requested = threading.Event()

    def request_stop(signum, _frame) -> None:
        log.info("Received %s: shutting down", signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        host.start()
    except Exception:
        log.exception("Host failed to start")
        return 1
    if host.index_error:
        # func start would idle with no function; a local host with nothing to run says so and stops.
        host.stop(0)
        return 1
    log.info("Application started. Press Ctrl+C to shut down.")
    while not stop_requested.wait(1.0):
        pass
    clean = host.stop(args.stop_timeout)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())

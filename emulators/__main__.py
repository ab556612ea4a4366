"""Command line of the local stack.

    python -m emulators up [--persist] [--folder .localstack]   start everything in the background
        [--auth0-rate 50 --auth0-burst 100]                     the tenant-wide Auth0 bucket (all clients share it)
        [--arm-reads 25/250 --arm-writes 10/200 --arm-deletes 10/200 | --arm-reads off ...]
                                                               ARM's per-principal buckets on the APIM stand-in
    python -m emulators status                                 what runs where
    python -m emulators show [--customer ID] [--json]          what the stand-ins hold (apps, secrets, queue...)
    python -m emulators fault auth0 clients.create 503 --count 2
    python -m emulators faults keyvault --latency-ms 40 --error-rate 0.1 --errors 500,503,timeout
    python -m emulators calls [SERVICE]                        call counters (and injected faults)
    python -m emulators clear-faults [SERVICE]
    python -m emulators down                                   stop it (by the PID in stack.json)
    python -m emulators reset                                  stop it and forget its kept state (--persist)
    python -m emulators serve                                  run in the foreground (what `up` starts)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = ROOT / ".localstack"
HTTP_SERVICES = ("identity", "auth0", "keyvault", "apim")


def _stack_file(folder: Path) -> Path:
    return folder / "stack.json"


def _read_stack(folder: Path) -> dict:
    try:
        return json.loads(_stack_file(folder).read_text())
    except FileNotFoundError:
        sys.exit(f"no local stack is running from {folder} (start it with `python -m emulators up`)")


def _alive(pid: int) -> bool:
    """The stack's process runs (a PID reused by another program after a crash does not count)."""
    from .runlock import pid_alive
    return pid_alive(pid, expect="emulators")


def rate_burst(text: str) -> tuple[float, int] | None:
    """``RATE/BURST`` (e.g. ``10/200``) or ``off``."""
    if text.strip().lower() in ("off", "none", "0"):
        return None
    try:
        rate, burst = text.split("/")
        value = (float(rate), int(burst))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RATE/BURST (e.g. 10/200) or off, not {text!r}") from None
    if value[0] <= 0 or value[1] < 1:
        raise argparse.ArgumentTypeError("the rate must be positive and the burst at least 1")
    return value


def _arm_limits(args) -> dict | None:
    limits = {kind: getattr(args, f"arm_{kind}") for kind in ("reads", "writes", "deletes")}
    limits = {k: v for k, v in limits.items() if v is not None}
    return limits or None


def _format_rate(value) -> str:
    return "off" if value is None else f"{value[0]:g}/{value[1]}"


def _options(args):
    from .stack import StackOptions
    return StackOptions(persist=args.persist, servicebus=not args.no_servicebus, auth0_rate=args.auth0_rate,
                        auth0_burst=args.auth0_burst, apim_sku=args.apim_sku, arm_limits=_arm_limits(args),
                        servicebus_config=args.servicebus_config,
                        servicebus_connection=args.servicebus_connection,
                        servicebus_namespace=args.servicebus_namespace)


def cmd_serve(args) -> int:
    from .stack import LocalStack, write_env_file, write_local_settings
    folder = Path(args.folder).resolve()
    stack = LocalStack(folder, _options(args)).start()
    values = stack.settings
    write_local_settings(values, args.settings)
    admin_id, admin_secret = stack.admin_credentials
    # The shell (not the app) also gets the tenant-admin client: `python -m opstool tenant plan|apply`.
    write_env_file({**values, "AUTH0_ADMIN_CLIENT_ID": admin_id, "AUTH0_ADMIN_CLIENT_SECRET": admin_secret},
                   folder / "env")
    info = stack.describe()
    tmp = _stack_file(folder).with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(_stack_file(folder))
    print(f"local stack ready (pid {os.getpid()}); settings in {args.settings}, env file {folder / 'env'}",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    stack.stop()
    _stack_file(folder).unlink(missing_ok=True)
    print("local stack stopped", flush=True)
    return 0


def cmd_up(args) -> int:
    from .runlock import startup_lock
    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with startup_lock(folder):
        return _up(args, folder)


def _up(args, folder: Path) -> int:
    if _stack_file(folder).exists():
        info = json.loads(_stack_file(folder).read_text())
        if _alive(info["pid"]):
            kept = ("its state is kept in " + str(folder / "state") if info.get("persist")
                    else "it was started without --persist: its state goes when it stops")
            print(f"local stack already running (pid {info['pid']}), used as it is; {kept}; "
                  "`python -m emulators down` stops it")
            from .appsettings import restore_settings
            try:
                restored = restore_settings(folder, args.settings)
            except FileNotFoundError as exc:
                print(exc, file=sys.stderr)
                return 1
            if restored:
                print(restored)
            return 0
        _stack_file(folder).unlink()
    argv = [sys.executable, "-m", "emulators", "--folder", str(folder), "serve", "--settings", args.settings,
            "--auth0-rate", str(args.auth0_rate), "--auth0-burst", str(args.auth0_burst), "--apim-sku", args.apim_sku,
            "--arm-reads", _format_rate(args.arm_reads), "--arm-writes", _format_rate(args.arm_writes),
            "--arm-deletes", _format_rate(args.arm_deletes)]
    if args.persist:
        argv.append("--persist")
    if args.no_servicebus:
        argv.append("--no-servicebus")
    for flag in ("servicebus_config", "servicebus_connection", "servicebus_namespace"):
        if getattr(args, flag):
            argv += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    log = open(folder / "stack.log", "ab")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"the local stack failed to start (exit {proc.returncode}); last lines of {folder / 'stack.log'}:",
                  file=sys.stderr)
            print("\n".join((folder / "stack.log").read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
            return 1
        if _stack_file(folder).exists():
            break
        time.sleep(0.2)
    else:
        proc.terminate()
        print(f"the local stack did not become ready within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    info = _read_stack(folder)
    _wait_healthy(info)
    print(f"local stack up (pid {info['pid']})")
    _print_status(info)
    print(f"app settings written to {args.settings}; `source {folder / 'env'}` for a shell")
    return 0


def _wait_healthy(info: dict, timeout: float = 20.0) -> None:
    from .control import StandInControl
    for name, svc in info["services"].items():
        ctl = StandInControl(svc["url"], verify=info["ca_cert"])
        deadline = time.monotonic() + timeout
        while True:
            try:
                ctl.health()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} does not answer at {svc['url']}")
                time.sleep(0.2)


def _print_status(info: dict) -> None:
    for name, svc in info["services"].items():
        print(f"  {name:<10} {svc['url']}")
    if info.get("azurite"):
        print(f"  {'azurite':<10} " + ", ".join(f"{k} {v}" for k, v in info["azurite"].items()))
    if info.get("servicebus"):
        print(f"  {'servicebus':<10} amqp://127.0.0.1:{info['servicebus']['port']}")
    if info.get("api"):
        print(f"  {'api':<10} {info['api']['url']}  (through the gateway: python -m devtools.call --customer ID)")


def cmd_down(args) -> int:
    folder = Path(args.folder).resolve()
    if not _stack_file(folder).exists():
        print("no local stack running")
        return 0
    pid = json.loads(_stack_file(folder).read_text())["pid"]
    if _alive(pid):
        from .runlock import pid_exited, pid_gone
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while not pid_exited(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pid_exited(pid):
            os.kill(pid, signal.SIGKILL)
        # Its ports are free now; give whoever adopted it a moment to reap it, so `status` and scripts see it gone.
        reaped = time.monotonic() + 5
        while not pid_gone(pid) and time.monotonic() < reaped:
            time.sleep(0.1)
    _stack_file(folder).unlink(missing_ok=True)
    print(f"local stack stopped (pid {pid})")
    return 0


def cmd_reset(args) -> int:
    """Stop the stack and delete the state it keeps with --persist (the stand-ins' objects, Azurite's tables).
    The TLS files and the stand-ins' credentials stay: they hold nothing of the app's."""
    import shutil

    from .runlock import HostLock
    folder = Path(args.folder).resolve()
    holder = HostLock(folder).holder()
    if holder:
        print(f"a local Functions host is running on this stack (pid {holder.get('pid')}, `make run` or `make host`);"
              " stop it with Ctrl-C in its terminal first", file=sys.stderr)
        return 1
    cmd_down(args)
    removed = [p.name for p in (folder / "state", folder / "azurite") if p.exists()]
    for name in removed:
        shutil.rmtree(folder / name)
    print(f"state removed ({', '.join(removed)})" if removed else "no kept state to remove")
    return 0


def cmd_show(args) -> int:
    from .show import StandInUnreachable, collect, render
    folder = Path(args.folder).resolve()
    info = _read_stack(folder)
    if not _alive(info["pid"]):
        sys.exit(f"the local stack in {folder} is not running (pid {info['pid']} has gone); `make up` starts it")
    try:
        doc = collect(info, customer=args.customer)
    except StandInUnreachable as exc:
        sys.exit(f"cannot read the stack's state: {exc}")
    print(json.dumps(doc, indent=1) if args.json else render(doc))
    return 0


def cmd_status(args) -> int:
    info = _read_stack(Path(args.folder).resolve())
    state = "running" if _alive(info["pid"]) else "NOT running (stale stack.json)"
    print(f"local stack pid {info['pid']}: {state}")
    _print_status(info)
    return 0 if _alive(info["pid"]) else 1


def _control(args, service: str):
    from .control import StandInControl
    info = _read_stack(Path(args.folder).resolve())
    if service not in info["services"]:
        sys.exit(f"unknown service {service!r}: one of {', '.join(info['services'])}")
    return StandInControl(info["services"][service]["url"], verify=info["ca_cert"])


def cmd_fault(args) -> int:
    fail = int(args.fail_with) if args.fail_with.isdigit() else args.fail_with
    _control(args, args.service).fail_next(args.op, fail, args.count)
    print(f"{args.service}: the next {args.count} call(s) to {args.op} fail with {args.fail_with}")
    return 0


def cmd_faults(args) -> int:
    errors = [int(e) if e.isdigit() else e for e in args.errors.split(",")] if args.errors else [500]
    rules = [{"op": args.op, "latency_ms": args.latency_ms, "error_rate": args.error_rate, "errors": errors}]
    print(json.dumps(_control(args, args.service).set_faults(rules), indent=1))
    return 0


def cmd_clear_faults(args) -> int:
    for service in [args.service] if args.service else HTTP_SERVICES:
        _control(args, service).clear_faults()
    print("faults cleared")
    return 0


def cmd_calls(args) -> int:
    for service in [args.service] if args.service else HTTP_SERVICES:
        print(service, json.dumps(_control(args, service).calls(), indent=1, sort_keys=True))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulators", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", default=str(DEFAULT_FOLDER), help="stack folder (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True)

    def stack_args(sp):
        sp.add_argument("--settings", default=str(ROOT / "local.settings.json"),
                        help="where to write the app settings (default: %(default)s)")
        sp.add_argument("--persist", action="store_true", help="keep each service's state in the folder across restarts")
        sp.add_argument("--no-servicebus", action="store_true", help="do not start the Service Bus stand-in")
        sp.add_argument("--servicebus-config", help="a Config.json like the official emulator's")
        sp.add_argument("--servicebus-connection", metavar="CONNECTION_STRING",
                        help="use this Service Bus instead of the stand-in (the official emulator, or a namespace)")
        sp.add_argument("--servicebus-namespace", metavar="FQDN",
                        help="use this namespace with DefaultAzureCredential instead of the stand-in "
                             "(e.g. contoso.servicebus.windows.net)")
        sp.add_argument("--auth0-rate", type=float, default=50.0,
                        help="Auth0 rate limit of the tenant (every client shares it), requests/s (default 50)")
        sp.add_argument("--auth0-burst", type=int, default=100, help="Auth0 rate limit bucket size (default 100)")
        for kind, default in (("reads", "25/250"), ("writes", "10/200"), ("deletes", "10/200")):
            sp.add_argument(f"--arm-{kind}", type=rate_burst, default=rate_burst(default), metavar="RATE/BURST",
                            help=f"ARM's per-principal {kind} bucket on the APIM stand-in, or off "
                                 f"(default {default}, Microsoft's documented limit)")
        sp.add_argument("--apim-sku", default="Developer", help="APIM tier, sets the authorization server limit")

    sp = sub.add_parser("up", help="start the stack in the background and wait until it answers")
    stack_args(sp)
    sp.add_argument("--timeout", type=float, default=60.0)
    sp.set_defaults(fn=cmd_up)
    sp = sub.add_parser("serve", help="run the stack in the foreground until Ctrl-C")
    stack_args(sp)
    sp.set_defaults(fn=cmd_serve)
    sub.add_parser("down", help="stop the stack started by `up`").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="show what runs where").set_defaults(fn=cmd_status)
    sub.add_parser("reset", help="stop the stack and delete the state it keeps with --persist "
                                 "(refused while a local host runs on it)").set_defaults(fn=cmd_reset)
    sp = sub.add_parser("show", help="print what the stand-ins hold: Auth0 applications, Key Vault secrets (never "
                                     "values), APIM entries, queue counts and dead-lettered messages")
    sp.add_argument("--customer", metavar="ID", help="only what belongs to this customer id")
    sp.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    sp.set_defaults(fn=cmd_show)
    sp = sub.add_parser("fault", help="make the next N calls to one operation fail")
    sp.add_argument("service", choices=HTTP_SERVICES)
    sp.add_argument("op", help="operation name, e.g. clients.create (wildcards allowed: 'secrets.*')")
    sp.add_argument("fail_with", help="HTTP status (500, 503, 429...), timeout, drop or drop_after")
    sp.add_argument("--count", type=int, default=1)
    sp.set_defaults(fn=cmd_fault)
    sp = sub.add_parser("faults", help="set latency and a random error rate on a service")
    sp.add_argument("service", choices=HTTP_SERVICES)
    sp.add_argument("--op", default="*", help="operation pattern (default: all)")
    sp.add_argument("--latency-ms", type=float, default=0.0)
    sp.add_argument("--error-rate", type=float, default=0.0, help="0..1")
    sp.add_argument("--errors", default="500", help="comma-separated: 500,503,429,timeout,drop,drop_after")
    sp.set_defaults(fn=cmd_faults)
    sp = sub.add_parser("clear-faults", help="remove every fault rule")
    sp.add_argument("service", nargs="?", choices=HTTP_SERVICES)
    sp.set_defaults(fn=cmd_clear_faults)
    sp = sub.add_parser("calls", help="print call counters per operation")
    sp.add_argument("service", nargs="?", choices=HTTP_SERVICES)
    sp.set_defaults(fn=cmd_calls)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

"""Run the Service Bus stand-in in the foreground: ``python -m emulators.servicebus``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import ServiceBusStandIn, default_config_path, load_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.servicebus", description=__doc__)
    parser.add_argument("--config", default=default_config_path(), help="Config.json (official emulator shape)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5672, help="0 picks a free port")
    parser.add_argument("--state", metavar="FILE",
                        help="keep the messages in this file across restarts (default: in memory only)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    sb = ServiceBusStandIn(load_config(args.config), host=args.host, port=args.port, state_file=args.state)
    sb.start()
    print(sb.connection_string, flush=True)
    done = threading.Event()

    def on_signal(signum, _frame):
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not done.wait(0.5):
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A fake pipeline worker for the supervisor tests: heartbeats like a real one (pmshared.runtime),
and misbehaves on request.

    worker.py NAME [--exit-code N]        exit with N at once (no heartbeat)
                   [--die-after S]        heartbeat for S seconds, then exit 1
                   [--ignore-term]        ignore SIGTERM (only SIGKILL ends it)
                   [--grandchild FILE]    start a child that ignores SIGTERM; write its pid to FILE
                   [--say TEXT]           print TEXT (stdout) and TEXT on stderr at start
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from pmshared.runtime import Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--exit-code", type=int)
    parser.add_argument("--die-after", type=float)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--grandchild")
    parser.add_argument("--say")
    args = parser.parse_args()
    if args.exit_code is not None:
        print(f"{args.name}: exiting with {args.exit_code}", flush=True)
        raise SystemExit(args.exit_code)

    worker = Worker(args.name)
    worker.install_signal_handlers()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.grandchild:
        sleeper = subprocess.Popen(
            [sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(600)"]
        )
        tmp = args.grandchild + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(sleeper.pid))
        os.replace(tmp, args.grandchild)  # atomic: the test never reads a half-written pid
    if args.say:
        print(args.say, flush=True)
        print(args.say, file=sys.stderr, flush=True)
    worker.start_heartbeat()
    started = time.monotonic()
    try:
        while worker.running:
            worker.heartbeat()
            if args.die_after is not None and time.monotonic() - started >= args.die_after:
                raise SystemExit(1)
            worker.stopping.wait(0.05)
    finally:
        worker.close()


if __name__ == "__main__":
    main()

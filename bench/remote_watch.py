"""What remote watch costs: answer times over loopback CURVE and the serving side's CPU.

Starts a real `pmctl up` (the default Procfile) in a temporary home with [remote] enabled on free
loopback ports, makes an allowed client and a stranger (homes of their own), then measures
- wall time of `pmctl status` (local ipc) and `pmctl status --connect` / `watch --once --connect`
  (interpreter start + CURVE handshake + ZAP + reply), median of --runs;
- how long a refused client (the stranger) takes to get its one-line error;
- tiering + supervisor CPU (utime + stime from /proc) over --idle-s seconds, once with no remote
  client and once with one remote subscriber on the live feed, against the same run with [remote]
  disabled (a second pipeline).

    .venv/bin/python bench/remote_watch.py [--runs 7] [--idle-s 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.procutil import wait_for  # noqa: E402
from tests.remote_helpers import free_port_base  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = Path(tempfile.mkdtemp(prefix="pmb", dir="/tmp"))
        os.chmod(self.runtime, 0o700)
        self.env = {k: v for k, v in os.environ.items() if k != "PAUSE_MONITOR_CONFIG"}
        self.env.update(HOME=str(root), XDG_CONFIG_HOME=str(root / "config"), XDG_DATA_HOME=str(root / "data"),
                        XDG_RUNTIME_DIR=str(self.runtime))

    def pmctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise SystemExit(f"pmctl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def timed(self, *args: str) -> float:
        began = time.perf_counter()
        self.pmctl(*args, check=False)
        return time.perf_counter() - began


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def serving_pids(home: Home) -> list[int]:
    import json

    doc = json.loads(home.pmctl("status", "--json").stdout)
    return [doc["supervisor_pid"], *(w["pid"] for w in doc["workers"] if w["name"] == "tiering")]


def start(home: Home, config: str) -> subprocess.Popen:
    cfg = Path(home.env["XDG_CONFIG_HOME"]) / "pause-monitor" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(config)
    up = subprocess.Popen([sys.executable, "-m", "cli", "up"], cwd=REPO, env=home.env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: home.pmctl("status", check=False).returncode == 0, 30, "the pipeline")
    return up


def stop(up: subprocess.Popen) -> None:
    up.send_signal(signal.SIGTERM)
    up.wait(timeout=30)


def idle_cpu(pids: list[int], seconds: float) -> float:
    before = cpu_s(pids)
    time.sleep(seconds)
    return (cpu_s(pids) - before) / seconds * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle-s", type=float, default=30.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pm-remote-bench-"))
    homes = []
    try:
        server, friend, stranger, plain = (Home(root / n) for n in ("server", "friend", "stranger", "plain"))
        homes = [server, friend, stranger, plain]
        for h in (server, friend, stranger):
            h.pmctl("keys", "generate")
        server_key = server.pmctl("keys", "show", "--role", "server").stdout.strip()
        server.pmctl("keys", "allow", friend.pmctl("keys", "show", "--role", "client").stdout.strip())
        for h in (friend, stranger):
            h.pmctl("keys", "trust", "127.0.0.1", server_key)
        base = free_port_base()
        url = f"tcp://127.0.0.1:{base}"
        up = start(server, f"[remote]\nenabled = true\nport_base = {base}\n")
        try:
            pids = serving_pids(server)
            time.sleep(3)  # past the start-up burst
            print(f"idle, remote enabled, no client: tiering+supervisor {idle_cpu(pids, args.idle_s):.2f} % of a core")
            viewer = subprocess.Popen([sys.executable, "-c", VIEWER, url, server_key], cwd=REPO, env=friend.env)
            try:
                time.sleep(2)
                print(f"idle, one remote live subscriber: tiering+supervisor {idle_cpu(pids, args.idle_s):.2f} % of a core")
            finally:
                viewer.terminate()
                viewer.wait(timeout=10)
            for label, home, argv in (
                ("pmctl status (local ipc)", server, ("status",)),
                ("pmctl status --connect", friend, ("status", "--connect", url)),
                ("pmctl watch --once --connect", friend, ("watch", "--once", "--connect", url)),
            ):
                times = [home.timed(*argv) for _ in range(args.runs)]
                print(f"{label}: median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, "
                      f"max {max(times) * 1000:.0f}; {args.runs} runs)")
            for argv in (("watch", "--once", "--connect", url), ("status", "--connect", url)):
                print(f"refused client, pmctl {argv[0]}: one line after {stranger.timed(*argv):.2f} s")
        finally:
            stop(up)
        up = start(plain, "")
        try:
            pids = serving_pids(plain)
            time.sleep(3)
            print(f"idle, remote not configured: tiering+supervisor {idle_cpu(pids, args.idle_s):.2f} % of a core")
        finally:
            stop(up)
    finally:
        for h in homes:
            shutil.rmtree(h.runtime, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


# A remote subscriber on the live feed, as `pmctl watch --connect` holds one (without drawing).
VIEWER = """
import sys
from pmshared import remote
from pmshared.endpoints import Sockets
s = Sockets(target=remote.target(sys.argv[1], sys.argv[2]))
live = s.connect("live")
try:
    while True:
        if live.poll(1000):
            live.recv_multipart()
except KeyboardInterrupt:
    pass
finally:
    s.close()
"""

if __name__ == "__main__":
    raise SystemExit(main())

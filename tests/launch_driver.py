"""Drives supervisor.launch in a clean process (one thread, as in the supervisor at start-up).

``python tests/launch_driver.py SPEC_JSON``: forks the spec's argv with ``fork_target``, waits for it
(at most spec["timeout"] s), prints one JSON line {pid, returncode, output}. With spec["hang"] it
prints {pid} and then sleeps, so a test can SIGKILL this driver and watch the worker die.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from supervisor import launch  # noqa: E402


def main() -> int:
    spec = json.loads(sys.argv[1])
    argv = [sys.executable if a == "python" else a for a in spec["argv"]]
    target = launch.python_target(argv)
    assert target is not None, argv
    assert launch.fork_supported()
    if spec.get("preload"):
        problems = launch.preload([target])
        print(json.dumps({"preload_problems": problems}), flush=True)
    held = os.open(os.devnull, os.O_RDONLY)  # a descriptor of ours the child must not keep
    read_end, write_end = os.pipe()
    proc = launch.fork_target(target, spec["name"], spec["env"], spec["cwd"], write_end)
    os.close(write_end)
    if spec.get("hang"):
        print(json.dumps({"pid": proc.pid, "held_fd": held}), flush=True)
        time.sleep(600)
        return 0
    output = b""
    deadline = time.monotonic() + spec.get("timeout", 20)
    while chunk := os.read(read_end, 65536):
        output += chunk
        if time.monotonic() > deadline:
            break
    code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    print(json.dumps({"pid": proc.pid, "returncode": code, "output": output.decode(), "held_fd": held}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

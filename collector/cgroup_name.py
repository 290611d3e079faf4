"""A process's cgroup, reduced to a name a person recognises: ``cgroup_name(/proc/PID/cgroup)``.

/proc/PID/cgroup has one ``hierarchy-id:controllers:path`` line per mounted hierarchy: a single
``0::/path`` line on cgroup v2; one line per v1 controller (plus ``name=systemd``) on v1; both on
a hybrid machine, where the v2 line often reads ``0::/`` because nothing is placed there. The path
that names the process best is, in order: the v2 one, systemd's v1 one (both follow units), else
the path most v1 controllers agree on. Of that path:

- a container (docker, containerd/CRI, CRI-O, podman, LXC) gives ``runtime:shortid`` — the 12
  characters ``docker ps`` shows — or ``pod:<uid prefix>`` for a Kubernetes pod's own cgroup;
- else the innermost systemd unit (``foo.service``, ``session-3.scope``); a user manager's own
  ``init.scope`` is named after its ``user@UID.service``;
- else the last component of the path, a long hex id shortened after its parent's name;
- ``/`` (or nothing readable) is None: the root says nothing about who started the process.

Pure: bytes in, a short printable string out; never raises on odd input.
"""

from __future__ import annotations

import re

# A container id as runtimes put it in cgroup paths: 64 hex digits.
_CONTAINER = re.compile(
    r"^(?:(docker|cri-containerd|crio|libpod|libpod-conmon)-)?([0-9a-f]{64})(?:\.scope)?$"
)
_RUNTIME = {
    "docker": "docker", "cri-containerd": "containerd", "crio": "crio",
    "libpod": "podman", "libpod-conmon": "podman",
}  # fmt: skip
# The runtime a bare 64-hex component belongs to, from the components above it.
_PARENT_RUNTIME = {"docker": "docker", "kubepods": "k8s", "containerd": "containerd", "lxc": "lxc"}
_POD = re.compile(r"pod([0-9a-f]{8})[0-9a-f_-]{28}(?:\.slice)?$")
_LONG_HEX = re.compile(r"^[0-9a-f]{32,}$")
_UNIT_SUFFIXES = (".service", ".scope")
SHORT_ID = 12
MAX_NAME = 128  # a cgroup name is bounded by the filesystem's 255; keep what is shown short


def cgroup_name(b: bytes) -> str | None:
    """The recognisable name of the cgroup in a /proc/PID/cgroup file; None for the root."""
    path = _best_path(b)
    if path is None:
        return None
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    name = _container(parts) or _unit(parts) or _leaf(parts)
    # Anyone allowed to make a cgroup chooses its name: control and bidi characters stay inert.
    return "".join(c if c.isprintable() else "?" for c in name[:MAX_NAME])


def _best_path(b: bytes) -> str | None:
    """The path of the v2 line, else name=systemd's, else the one most v1 controllers share."""
    unified = systemd = None
    votes: dict[str, int] = {}
    for line in b.decode("utf-8", "replace").splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3 or not fields[2].startswith("/"):
            continue
        _, controllers, path = fields
        # "/foo (deleted)": the cgroup was removed while the process sat in it
        path = path.removesuffix(" (deleted)")
        if path == "/":
            continue
        if controllers == "":
            unified = path
        elif controllers == "name=systemd":
            systemd = path
        else:
            votes[path] = votes.get(path, 0) + 1
    if unified or systemd:
        return unified or systemd
    return max(votes, key=votes.__getitem__) if votes else None  # ties: first seen


def _container(parts: list[str]) -> str | None:
    """``runtime:shortid`` of the innermost container component; ``pod:xxxxxxxx`` for a pod."""
    for i in range(len(parts) - 1, -1, -1):
        m = _CONTAINER.match(parts[i])
        if m:
            runtime = _RUNTIME.get(m.group(1) or "") or _runtime_above(parts[:i])
            return f"{runtime}:{m.group(2)[:SHORT_ID]}"
        if parts[i].startswith("lxc.payload."):
            return "lxc:" + parts[i].removeprefix("lxc.payload.")
        if i > 0 and parts[i - 1] == "lxc":
            return "lxc:" + parts[i]
        m = _POD.search(parts[i])
        if m:
            return f"pod:{m.group(1)}"
    return None


def _runtime_above(parts: list[str]) -> str:
    for p in reversed(parts):
        for key, runtime in _PARENT_RUNTIME.items():
            if p == key or p.startswith(key + "."):
                return runtime
    return "container"


def _unit(parts: list[str]) -> str | None:
    """The innermost systemd service or scope (slices only group them)."""
    for i in range(len(parts) - 1, -1, -1):
        p = parts[i]
        if p.endswith(_UNIT_SUFFIXES):
            if p == "init.scope" and i > 0 and parts[i - 1].startswith("user@"):
                return parts[i - 1]  # the user's systemd manager itself
            return p
    return None


def _leaf(parts: list[str]) -> str:
    leaf = parts[-1]
    if _LONG_HEX.match(leaf):
        return f"{parts[-2]}:{leaf[:SHORT_ID]}" if len(parts) > 1 else leaf[:SHORT_ID]
    return leaf

"""cgroup_name on /proc/PID/cgroup files as real machines write them: cgroup v2 (systemd
distributions since ~2021), v1 (older distributions, containers on them), hybrid (v1 controllers
plus an empty v2 mount: this test machine), and the container runtimes' layouts."""

from __future__ import annotations

import pytest

from collector.cgroup_name import cgroup_name

HEX = "3f4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"  # a 64-hex container id

# This machine (cgroup v1/hybrid): a sandbox's memory cgroup, everything else at the root.
HYBRID_SANDBOX = b"""9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/49841cc3ee72337076916222d9648d61
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""

# Ubuntu 20.04 (hybrid): an ssh session; the v2 line carries the unit path too.
HYBRID_SESSION = b"""12:pids:/user.slice/user-1000.slice/session-3.scope
11:memory:/user.slice/user-1000.slice/session-3.scope
10:cpu,cpuacct:/user.slice
9:devices:/user.slice
8:blkio:/user.slice
7:freezer:/
6:net_cls,net_prio:/
5:perf_event:/
4:hugetlb:/
3:cpuset:/
2:rdma:/
1:name=systemd:/user.slice/user-1000.slice/session-3.scope
0::/user.slice/user-1000.slice/session-3.scope
"""

# CentOS 7 (pure v1): a system service.
V1_SERVICE = b"""11:cpuset:/
10:memory:/system.slice/sshd.service
9:blkio:/system.slice/sshd.service
8:pids:/system.slice/sshd.service
7:freezer:/
6:devices:/system.slice/sshd.service
5:cpu,cpuacct:/system.slice/sshd.service
4:hugetlb:/
3:net_cls,net_prio:/
2:perf_event:/
1:name=systemd:/system.slice/sshd.service
"""

# Docker with the cgroupfs driver on v1: no systemd line of use, every controller agrees.
V1_DOCKER = (
    "12:hugetlb:/docker/{h}\n11:memory:/docker/{h}\n10:pids:/docker/{h}\n9:cpu,cpuacct:/docker/{h}\n"
    "1:name=systemd:/docker/{h}\n"
).format(h=HEX).encode()

# A process with no systemd at all, in cgroups some tool made: the controllers outvote one stray.
V1_NO_SYSTEMD = b"""4:memory:/batch/job-17
3:cpu,cpuacct:/batch/job-17
2:pids:/batch/job-17
1:blkio:/throttled
"""


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (b"0::/\n", None),  # v2, the root: says nothing
        (b"", None),
        (b"0::/init.scope\n", "init.scope"),  # pid 1 on a v2 machine
        (b"0::/system.slice/nginx.service\n", "nginx.service"),
        (b"0::/system.slice/systemd-journald.service\n", "systemd-journald.service"),
        (b"0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"),
        (b"0::/user.slice/user-1000.slice/user@1000.service/init.scope\n", "user@1000.service"),
        # GNOME on Fedora: an app the user manager started
        (b"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-2314.scope\n",
         "app-gnome-firefox-2314.scope"),
        (b"0::/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service\n", "pipewire.service"),
        # a service that delegates a subtree (its own sub-cgroups under the unit)
        (b"0::/system.slice/containerd.service/sub/leaf\n", "containerd.service"),
        (b"0::/machine.slice\n", "machine.slice"),  # only a slice: the leaf
        (b"0::/mygroup/worker\n", "worker"),
        (b"0::/system.slice/foo.service (deleted)\n", "foo.service"),
        # containers on v2
        (f"0::/system.slice/docker-{HEX}.scope\n".encode(), "docker:3f4e5a6b7c8d"),
        (f"0::/docker/{HEX}\n".encode(), "docker:3f4e5a6b7c8d"),  # cgroupfs driver
        (f"0::/machine.slice/libpod-{HEX}.scope/container\n".encode(), "podman:3f4e5a6b7c8d"),
        (f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{HEX}.scope\n".encode(),
         "podman:3f4e5a6b7c8d"),  # rootless podman
        (f"0::/machine.slice/libpod-conmon-{HEX}.scope\n".encode(), "podman:3f4e5a6b7c8d"),
        (f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_5e6f_7a8b_9c0d_"
         f"1e2f3a4b5c6d.slice/cri-containerd-{HEX}.scope\n".encode(), "containerd:3f4e5a6b7c8d"),
        (f"0::/kubepods.slice/kubepods-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/crio-{HEX}.scope\n".encode(),
         "crio:3f4e5a6b7c8d"),
        (f"0::/kubepods/burstable/pod1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d/{HEX}\n".encode(), "k8s:3f4e5a6b7c8d"),
        # a pod's own cgroup (no container below it)
        (b"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b3c4d_5e6f_7a8b_9c0d_"
         b"1e2f3a4b5c6d.slice\n", "pod:1a2b3c4d"),
        (b"0::/lxc.payload.web01\n", "lxc:web01"),
        (b"0::/lxc/web01\n", "lxc:web01"),
        # v1 and hybrid files
        (HYBRID_SANDBOX, "process_api:49841cc3ee72"),
        (HYBRID_SESSION, "session-3.scope"),
        (V1_SERVICE, "sshd.service"),
        (V1_DOCKER, "docker:3f4e5a6b7c8d"),
        (V1_NO_SYSTEMD, "job-17"),
    ],
)
def test_cgroup_names_a_person_recognises(text: bytes, name: str | None) -> None:
    assert cgroup_name(text) == name


def test_odd_input_never_raises() -> None:
    for text in (b"garbage", b"0:", b"::::\n", b"\xff\xfe:memory:/\xff\n", b"1:cpu:relative/path\n"):
        cgroup_name(text)
    long = b"0::/" + b"x" * 300 + b"\n"
    assert len(cgroup_name(long) or "") <= 128
    # a name chosen by whoever made the cgroup: escape sequences and bidi overrides made inert
    assert cgroup_name("0::/app/\x1b[31mred\u202eevil.service\n".encode()) == "?[31mred?evil.service"

"""Remote watch without a pipeline: key files (modes, refusals), `pmctl keys`, the [remote] config,
the --connect URL and the one-line diagnosis of a silent server.

Every test runs in the isolated home of tests/conftest.py, so the key files are the test's own.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import zmq
import zmq.auth

from pmshared import config as cfg
from pmshared import curve_keys, remote
from pmshared.endpoints import ENDPOINTS, Sockets
from tests.conftest import REPO
from tests.remote_helpers import free_port_base


def pmctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, timeout=30)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------------------------------------- key files
def test_generate_writes_both_keypairs_private_and_keeps_them_unless_forced():
    made = {role: curve_keys.generate(role) for role in curve_keys.ROLES}
    assert all(fresh for _pair, fresh in made.values())
    assert mode(curve_keys.keys_dir()) == 0o700
    for role in curve_keys.ROLES:
        for path in (curve_keys.public_path(role), curve_keys.secret_path(role)):
            assert mode(path) == 0o600, path
        # The files are ZeroMQ's own certificate format: zmq.auth reads them back.
        public, secret = zmq.auth.load_certificate(curve_keys.secret_path(role))
        assert public.decode() == made[role][0].public and secret.decode() == made[role][0].secret
        assert curve_keys.load_public(role) == made[role][0].public
    again, fresh = curve_keys.generate("server")
    assert not fresh and again == made["server"][0]
    replaced, fresh = curve_keys.generate("server", force=True)
    assert fresh and replaced.public != made["server"][0].public


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604])
def test_a_secret_key_others_can_read_is_refused_in_one_line(bits):
    curve_keys.generate("client")
    path = curve_keys.secret_path("client")
    os.chmod(path, bits)
    with pytest.raises(curve_keys.KeyFileError) as err:
        curve_keys.load_pair("client")
    message = str(err.value)
    assert "\n" not in message and f"{bits:04o}" in message and f"chmod 600 {path}" in message


def test_the_cli_refuses_a_world_readable_secret_key_with_one_line_and_no_traceback():
    assert pmctl("keys", "generate").returncode == 0
    os.chmod(curve_keys.secret_path("client"), 0o644)
    curve_keys.trust("127.0.0.1", curve_keys.load_public("server"))
    proc = pmctl("watch", "--once", "--connect", "tcp://127.0.0.1:47300")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "readable by others" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_or_malformed_key_file_is_one_line():
    with pytest.raises(curve_keys.KeyFileError, match="pmctl keys generate"):
        curve_keys.load_pair("client")
    curve_keys.write_private(curve_keys.secret_path("client"), 'curve\n    public-key = "short"\n')
    with pytest.raises(curve_keys.KeyFileError, match="not a CURVE public key"):
        curve_keys.load_pair("client")
    os.unlink(curve_keys.secret_path("client"))
    os.mkfifo(curve_keys.secret_path("client"), 0o600)  # never blocks on a FIFO
    with pytest.raises(curve_keys.KeyFileError, match="not a key file"):
        curve_keys.load_pair("client")


def test_allow_validates_the_key_and_the_name_and_the_zap_set_follows_the_directory():
    pub = zmq.curve_keypair()[0].decode()
    path = curve_keys.allow(pub, "laptop")
    assert path.name == "laptop.key" and mode(path) == 0o600
    assert curve_keys.allowed_keys() == {pub}
    for bad_key in ("", "x" * 39, "x" * 41, "abc def" + "x" * 33, '"' * 40):
        with pytest.raises(curve_keys.KeyFileError):
            curve_keys.allow(bad_key)
    for bad_name in ("../etc", "a/b", ".hidden", "x" * 65, "a b"):
        with pytest.raises(curve_keys.KeyFileError):
            curve_keys.allow(pub, bad_name)
    # A stray or broken file is skipped, not fatal; removing a file revokes.
    (curve_keys.allowed_dir() / "junk.key").write_text("nothing here")
    assert curve_keys.allowed_keys() == {pub}
    path.unlink()
    assert curve_keys.allowed_keys() == set()


def test_trust_records_one_key_per_host_and_an_unknown_host_names_the_fix():
    a, b = (zmq.curve_keypair()[0].decode() for _ in range(2))
    curve_keys.trust("db1.example", a)
    curve_keys.trust("db1.example", b)  # replaced, not added
    curve_keys.trust("10.0.0.2", a)
    assert curve_keys.known_servers() == {"db1.example": b, "10.0.0.2": a}
    assert mode(curve_keys.known_servers_path()) == 0o600
    assert curve_keys.server_key_for("db1.example") == b
    with pytest.raises(curve_keys.KeyFileError, match="pmctl keys trust other"):
        curve_keys.server_key_for("other")
    with pytest.raises(curve_keys.KeyFileError):
        curve_keys.trust("bad host", a)


def test_keys_commands_end_to_end():
    gen = pmctl("keys", "generate")
    assert gen.returncode == 0 and "server key created" in gen.stdout and "client key created" in gen.stdout
    client = pmctl("keys", "show", "--role", "client").stdout.strip()
    assert client == curve_keys.load_public("client")
    shown = pmctl("keys", "show").stdout.split()
    assert shown == ["server", curve_keys.load_public("server"), "client", client]
    assert pmctl("keys", "allow", "--name", "me", "--", client).returncode == 0
    assert curve_keys.allowed_keys() == {client}
    # A key may start with '-' (a Z85 character): after `--`, as the hints write it, it is a key.
    dashed = "-" + client[1:]
    assert pmctl("keys", "allow", "--name", "dashed", "--", dashed).returncode == 0
    assert pmctl("keys", "trust", "db9", "--", dashed).returncode == 0
    assert curve_keys.allowed_keys() == {client, dashed} and curve_keys.known_servers()["db9"] == dashed
    bad = pmctl("keys", "allow", "nope")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
    assert pmctl("keys", "show", "--role", "neither").returncode == 2


# ------------------------------------------------------------------------------- config
def test_remote_is_off_by_default_and_its_keys_are_validated():
    default = cfg.Config().remote
    assert default.enabled is False and default.listen_host == "127.0.0.1"
    ok = cfg.parse('[remote]\nenabled = true\nlisten_host = "0.0.0.0"\nport_base = 50000\n')
    assert ok.remote.enabled and ok.remote.port_base == 50000
    for text, key in [
        ("port_base = 1023", "remote.port_base"),
        ("port_base = 65533", "remote.port_base"),  # base + 3 must be a port
        ('listen_host = ""', "remote.listen_host"),
        ('listen_host = "a host"', "remote.listen_host"),
        ("enabled = 1", "remote.enabled"),
        ("ports = 3", "remote.ports: unknown key"),
    ]:
        with pytest.raises(cfg.ConfigError, match=key):
            cfg.parse(f"[remote]\n{text}\n")


def test_remote_ports_may_not_overlap_the_tcp_transport():
    overlap = '[transport]\nkind = "tcp"\ntcp_port_base = 47200\n[remote]\nenabled = true\nport_base = 47205\n'
    with pytest.raises(cfg.ConfigError, match="overlap"):
        cfg.parse(overlap)
    errors = cfg.validate_all(overlap)
    assert len(errors) == 1 and "overlap" in errors[0]
    cfg.parse(overlap.replace("47205", "47209"))  # adjacent is fine
    cfg.parse(overlap.replace("enabled = true", "enabled = false"))  # not served: no conflict


def test_port_counts_match_the_tables_they_copy():
    assert len(remote.REMOTE_PORTS) == cfg.REMOTE_PORT_COUNT
    assert sorted(remote.REMOTE_PORTS.values()) == list(range(cfg.REMOTE_PORT_COUNT))
    assert len(ENDPOINTS) == cfg._TRANSPORT_PORT_COUNT
    assert max(e.index for e in ENDPOINTS.values()) == cfg._TRANSPORT_PORT_COUNT - 1
    # Only what a viewer reads is published: nothing that feeds the pipeline.
    assert set(remote.REMOTE_PORTS) == {"live", "snapshot", "control", "lifecycle"}


# ------------------------------------------------------------------------------- --connect
@pytest.mark.parametrize("url,expected", [
    ("tcp://127.0.0.1:47300", ("127.0.0.1", 47300)),
    ("tcp://db1.example:5000", ("db1.example", 5000)),
    ("tcp://[::1]:47300", ("[::1]", 47300)),
])
def test_parse_url_accepts_host_and_port_base(url, expected):
    assert remote.parse_url(url) == expected


@pytest.mark.parametrize("url", ["", "127.0.0.1:47300", "ipc:///tmp/x", "tcp://host", "tcp://host:0",
                                 "tcp://host:65533", "tcp://ho st:1", "tcp://host:1/x", "tcp://host:99999"])
def test_parse_url_refuses_anything_else_in_one_line(url):
    with pytest.raises(remote.RemoteError) as err:
        remote.parse_url(url)
    assert "\n" not in str(err.value)


def _target() -> remote.Target:
    pub, sec = (k.decode() for k in zmq.curve_keypair())
    return remote.Target("db1", 47300, pub, curve_keys.KeyPair(pub, sec))


@pytest.mark.parametrize("events,says", [
    ([zmq.EVENT_CONNECT_DELAYED, zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_DISCONNECTED],
     "refused this client's key"),
    ([zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_DISCONNECTED], "wrong server key"),
    ([zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL], "wrong server key"),
    ([zmq.EVENT_CONNECT_DELAYED, zmq.EVENT_CLOSED, zmq.EVENT_CONNECT_RETRIED], "nothing accepts connections"),
    ([], "nothing accepts connections"),
    ([zmq.EVENT_CONNECTED, zmq.EVENT_HANDSHAKE_SUCCEEDED], "did not answer"),
    ([zmq.EVENT_CONNECTED], "refused this key or is not running"),
])
def test_diagnose_names_the_failure_in_one_line(events, says):
    target = _target()
    line = remote.diagnose(target, target.address("snapshot"), events, 3.0)
    assert line.startswith("no reply from tcp://db1:47301 within 3 s: ") and says in line and "\n" not in line
    if "refused this client's key" in says:
        assert f"pmctl keys allow -- '{target.client.public}'" in line


def test_a_target_only_reaches_the_published_endpoints():
    target = _target()
    assert [target.address(n) for n in ("live", "snapshot", "control", "lifecycle")] == [
        f"tcp://db1:{47300 + i}" for i in range(4)]
    with pytest.raises(remote.RemoteError):
        target.address("record")


# ------------------------------------------------------------------------------- one socket, two doors
def _reaches(router: zmq.Socket, client: Sockets, name: str) -> bool:
    dealer = client.connect(name)
    dealer.send(b"hello")
    return bool(router.poll(3000))


@pytest.mark.parametrize("host,url_host", [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]"), ("::", "[::1]")])
def test_a_published_socket_serves_ipc_plain_and_tcp_only_with_an_allowed_curve_key(host, url_host):
    curve_keys.generate("server")
    curve_keys.generate("client")
    curve_keys.allow(curve_keys.load_public("client"), "me")
    base = free_port_base()
    server = Sockets(remote=cfg.RemoteConfig(enabled=True, listen_host=host, port_base=base))
    try:
        router = server.bind("snapshot")
        assert server.address("snapshot").startswith("ipc://")
        local = Sockets()  # a local worker or pmctl: ipc, no CURVE, as before
        try:
            assert _reaches(router, local, "snapshot")
            assert remote.remote_client(router.recv_multipart(copy=False)[-1]) is None
        finally:
            local.close()
        target = remote.target(f"tcp://{url_host}:{base}", curve_keys.load_public("server"))
        viewer = Sockets(target=target)
        try:
            assert _reaches(router, viewer, "snapshot")
            assert remote.remote_client(router.recv_multipart(copy=False)[-1]) == target.client.public
        finally:
            viewer.close()
    finally:
        server.close()

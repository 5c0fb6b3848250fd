"""The policy server against an attacker and a careless user, on loopback (127.0.0.1) only.

Every loop is bounded in count and in time: the fuzz test by hypothesis's example count, the
lock-out test by its 300 idle connections and a 60 s deadline, the memory test by one frame.
"""

from __future__ import annotations

import json
import os
import socket as sockets
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from host.backends.driver import FinnZynqDriver  # noqa: E402
from host.backends.emulated_board import EmulatedBackend  # noqa: E402
from host.backends.remote import PolicyServer, RemotePolicy, design_identity, make_keys  # noqa: E402
from host.design.spec import load_spec  # noqa: E402
from host.errors import AcceleratorTimeout, HostError  # noqa: E402
from tests.host.conftest import DATA, policy_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DESIGN = DATA / "discrete"


def _free_port() -> int:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(*extra: str, nofile: int | None = None, port: int | None = None):
    """``python -m host serve`` (emulated) in a subprocess; returns ``(process, port, first line)``."""
    port = port or _free_port()

    def limit() -> None:
        if nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen([sys.executable, "-m", "host", "serve", "--design", str(DESIGN), "--backend", "emulated",
                             "--port", str(port), "--idle-exit", "90", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    line = proc.stdout.readline()
    return proc, port, line


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _host(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_server_binds_localhost_by_default():
    proc, port, line = _serve()
    try:
        assert f"at tcp://127.0.0.1:{port}, without authentication" in line, line
    finally:
        _stop(proc)


@pytest.mark.parametrize("args, expected", [
    (["serve", "--design", str(DESIGN), "--backend", "emulated", "--port", "99999"], "the port 99999 is outside 1..65535"),
    (["serve", "--design", str(DESIGN), "--backend", "emulated", "--port", "abc"], "the port 'abc' is not a number"),
    (["compare", "--design", str(DESIGN), "--backend", "remote", "--board", "notahost"], "is not <host>:<port>"),
    (["compare", "--design", str(DESIGN), "--backend", "remote", "--board", "127.0.0.1:abc"], "the port 'abc' is not a number"),
])
def test_bad_ports_and_addresses_are_one_sentence(args, expected):
    done = _host(*args)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_port_in_use_is_one_sentence():
    with sockets.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _host("serve", "--design", str(DESIGN), "--backend", "emulated", "--port", str(port))
    assert done.returncode == 2 and "is in use" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_unknown_board_host_is_one_sentence():
    spec = load_spec(DESIGN)
    with pytest.raises(HostError) as caught:
        RemotePolicy(spec, "tcp://notahost.invalid:5555", timeout_s=0.3)
    assert "\n" not in str(caught.value)


def test_curve_keys_let_the_authorised_client_in_and_no_other(tmp_path):
    if not zmq.has("curve"):
        pytest.skip("this libzmq has no CURVE")
    keys = tmp_path / "keys"
    make_keys(keys)
    assert oct((keys / "client.key_secret").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(HostError, match="already holds keys"):
        make_keys(keys)
    spec = load_spec(DESIGN)
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=8)
    server = PolicyServer(spec, driver, "tcp://127.0.0.1:0", keys=keys)
    import threading

    done = threading.Event()
    thread = threading.Thread(target=server.serve, kwargs={"stop": done.is_set}, daemon=True)
    thread.start()
    try:
        client = RemotePolicy(spec, server.address, keys=keys)
        assert client(np.zeros((1, spec.obs_dim), np.float32)).shape == (1,)
        client.close()
        with pytest.raises(AcceleratorTimeout, match="did not answer"):  # no keys: the handshake never completes
            RemotePolicy(spec, server.address, timeout_s=0.5)
        stranger = tmp_path / "stranger"
        make_keys(stranger)
        (stranger / "server.key").write_bytes((keys / "server.key").read_bytes())
        with pytest.raises(AcceleratorTimeout, match="are the CurveZMQ keys the server's"):  # a key it does not know
            RemotePolicy(spec, server.address, timeout_s=0.5, keys=stranger)
    finally:
        done.set()
        thread.join(timeout=5)
        server.close()


class _FakeServer:
    """A ROUTER that answers every request with ``reply`` (header dict or raw bytes) and ``body``; its
    hello names ``design`` and adds ``hello`` to its answer."""

    def __init__(self, reply, body: bytes = b"", design=DESIGN, hello: dict | None = None) -> None:
        import threading

        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://127.0.0.1:0")
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.reply, self.body, self.done = reply, body, threading.Event()
        self.design, self.hello = design, hello or {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        identity = design_identity(load_spec(self.design))
        while not self.done.is_set():
            if not self.socket.poll(50):
                continue
            frames = self.socket.recv_multipart()
            header = json.loads(frames[2])
            if header["kind"] == "hello":
                answer = [json.dumps({"ok": True, "identity": identity, **self.hello}).encode(), b""]
            else:
                raw = self.reply if isinstance(self.reply, bytes) else json.dumps(self.reply).encode()
                answer = [raw, self.body]
            self.socket.send_multipart([*frames[:2], *answer])

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.socket.close(0)


TIMES = {"check": 0.0, "pack": 0.0, "accel": 0.0, "unpack": 0.0}


@pytest.mark.parametrize("reply, body, expected", [
    ({"ok": True, "n": 1, "times": TIMES}, np.zeros(1, np.int64).tobytes(), "'dtype' is 'None'"),
    (b"[1, 2]", b"", "not a JSON object with 'ok'"),
    (b"\xff\xfe", b"", "not a JSON object with 'ok'"),
    ({"ok": True, "n": 1, "dtype": "int64", "times": TIMES}, np.array([7], np.int64).tobytes(), "outside the design's"),
    ({"ok": True, "n": 1, "dtype": "int64", "times": TIMES}, np.array([-1], np.int64).tobytes(), "outside the design's"),
    ({"ok": True, "n": 2, "dtype": "int64", "times": TIMES}, np.zeros(2, np.int64).tobytes(), "not the 1 observations"),
    ({"ok": True, "n": 1, "dtype": "int64", "times": TIMES}, b"\0" * 3, "3 bytes of actions"),
    ({"ok": True, "n": 1, "dtype": "int64", "times": {"check": "x"}}, np.zeros(1, np.int64).tobytes(), "'times'"),
    ({"ok": True, "n": 1, "dtype": "float64", "times": TIMES}, np.zeros(1).tobytes(), "not this design's int64"),
    ({"ok": False}, b"", "refused: None"),
])
def test_the_client_checks_every_reply(reply, body, expected):
    fake = _FakeServer(reply, body)
    try:
        client = RemotePolicy(load_spec(DESIGN), fake.address, timeout_s=2.0)
        with pytest.raises(HostError) as caught:
            client(np.zeros((1, 4), np.float32))
        assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
        client.close()
    finally:
        fake.close()


@pytest.mark.parametrize("hello, expected", [
    ({"policy": "x"}, "its hello's 'policy' is not a policy record"),
    ({"policy": {"name": "p"}}, "its hello's 'policy' is not a policy record"),
    ({}, "holds policy none (None), not design"),
    ({"policy": {"name": "other", "policy_sha256": "ab" * 32}}, "holds policy other (abababababab), not design"),
])
def test_the_client_checks_which_policy_a_writable_designs_server_holds(hello, expected):
    writable = DESIGN.parent / "writable" / "design"
    fake = _FakeServer({"ok": True}, design=writable, hello=hello)
    try:
        with pytest.raises(HostError) as caught:
            RemotePolicy(load_spec(writable), fake.address, timeout_s=2.0)
        assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    finally:
        fake.close()


def test_a_server_side_timeout_stops_the_episode_and_fails_the_verdict(tmp_path):
    """An accelerator that hangs on the server: each call is answered 'timeout', the client stops that
    episode (AcceleratorTimeout), the run goes on to the end, and the verdict names the timeouts."""
    from host.loop.episodes import run_episodes
    from host.loop.envs import make_env

    spec = load_spec(DESIGN)
    server = PolicyServer(spec, FinnZynqDriver(spec, EmulatedBackend(spec, hang=True), max_batch=8, timeout_s=0.02),
                          "tcp://127.0.0.1:0")
    import threading

    done = threading.Event()
    thread = threading.Thread(target=server.serve, kwargs={"stop": done.is_set}, daemon=True)
    thread.start()
    try:
        client = RemotePolicy(spec, server.address, timeout_s=5.0)
        with pytest.raises(AcceleratorTimeout, match="did not answer within 0.02 s"):
            client(np.zeros((1, 4), np.float32))
        result = run_episodes(client, lambda: make_env("CartPole-v1"), [1000, 1001, 1002])
        assert [e.timed_out for e in result.episodes] == [True] * 3 and all(e.length == 0 for e in result.episodes)
        client.close()
    finally:
        done.set()
        thread.join(timeout=5)
        server.close()


def _vm_kib(pid: int, key: str = "VmSize") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key}")


def _zmtp_peer(port: int) -> sockets.socket:
    """A raw TCP peer that completes ZMTP 3.0's NULL handshake as a DEALER."""
    peer = sockets.create_connection(("127.0.0.1", port), timeout=5)
    peer.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31)
    ready = b"\x05READY" + bytes([11]) + b"Socket-Type" + (6).to_bytes(4, "big") + b"DEALER"
    peer.sendall(bytes([0x04, len(ready)]) + ready)
    return peer


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the server's memory")
def test_a_frame_declaring_8_gib_costs_the_server_nothing():
    proc, port, line = _serve()
    try:
        assert "serving" in line
        before = _vm_kib(proc.pid)
        peer = _zmtp_peer(port)
        peer.sendall(bytes([0x02]) + (8 << 30).to_bytes(8, "big") + b"\0" * 4096)  # one frame of 8 GiB, declared
        deadline, closed = time.monotonic() + 10, False
        while time.monotonic() < deadline and not closed:  # the server drops the connection
            try:
                closed = peer.recv(65536) == b""
            except sockets.timeout:
                break
            except ConnectionResetError:
                closed = True
        peer.close()
        grown_mib = (_vm_kib(proc.pid) - before) / 1024
        assert closed and grown_mib < 256, f"the server's address space grew by {grown_mib:.0f} MiB"
        client = RemotePolicy(load_spec(DESIGN), f"tcp://127.0.0.1:{port}", timeout_s=10)
        assert client(np.zeros((1, 4), np.float32)).shape == (1,)  # and it still serves
        client.close()
    finally:
        _stop(proc)


@pytest.mark.parametrize("kind", ["silent TCP", "idle ZeroMQ"])
def test_idle_connections_under_a_low_descriptor_limit_do_not_lock_a_client_out(kind):
    """300 idle connections against a server limited to 128 descriptors: a correct client is served while
    they are all still open. Silent TCP connections never complete the ZMTP handshake and are dropped after
    it times out; idle ZeroMQ peers complete it and answer heartbeats, and are disconnected after
    --peer-idle seconds without a request."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    proc, port, line = _serve("--peer-idle", "2", nofile=128)
    idle: list = []
    try:
        assert "serving" in line, line
        for _ in range(300):
            if kind == "silent TCP":
                s = sockets.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
            else:
                s = zmq.Context.instance().socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.RECONNECT_IVL, -1)  # holds its one connection, as an idle client does
                s.connect(f"tcp://127.0.0.1:{port}")
            idle.append(s)
        time.sleep(1.0)  # let them take the server's descriptors
        t0 = time.monotonic()
        client = RemotePolicy(load_spec(DESIGN), f"tcp://127.0.0.1:{port}", timeout_s=45)
        assert client(np.zeros((1, 4), np.float32)).shape == (1,)
        waited = time.monotonic() - t0
        client.close()
        assert waited < 60 and proc.poll() is None
    finally:
        for s in idle:
            s.close(0) if hasattr(s, "setsockopt") and not isinstance(s, sockets.socket) else s.close()
        _stop(proc)
    summary = proc.stdout.read()
    if kind == "idle ZeroMQ":
        dropped = int(summary.split("disconnected ")[1].split()[0])
        assert dropped >= 100, summary  # the server itself let the idle peers go


def test_fuzzed_messages_never_stop_the_server():
    """hypothesis over the message format: frames of any count, headers of any JSON or bytes; every
    request is answered with ``ok`` a bool and a one-line error, and the server serves correctly after."""
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    spec = load_spec(DESIGN)
    server = PolicyServer(spec, FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=8), "tcp://127.0.0.1:0",
                          max_batch=8)
    good = np.zeros((1, 4), np.float32).tobytes()
    values = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20),
                       st.sampled_from(["act", "hello", "float32", "int64", "float64"]),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
    headers = st.one_of(
        st.binary(max_size=100),
        st.dictionaries(st.sampled_from(["kind", "n", "dtype", "identity", "extra"]), values, max_size=5)
        .map(lambda d: json.dumps(d).encode()),
        st.fixed_dictionaries({"kind": st.just("act"), "n": st.integers(-3, 10), "dtype": st.sampled_from(
            ["float32", "int64", "float64"])}).map(lambda d: json.dumps(d).encode()))
    bodies = st.one_of(st.binary(max_size=200), st.just(good), st.just(b""))

    @settings(max_examples=400, deadline=None)
    @given(frames=st.lists(st.one_of(headers, bodies), max_size=4), greeted=st.booleans())
    def check(frames, greeted):
        peer = b"greeted" if greeted else b"stranger"
        reply, payload = server.answer(frames, peer=peer)
        assert isinstance(reply["ok"], bool)
        json.dumps(reply)
        if not reply["ok"]:
            assert isinstance(reply["error"], str) and "\n" not in reply["error"] and payload == b""

    server._greet(b"greeted")
    try:
        check()
        reply, payload = server.answer([json.dumps({"kind": "act", "n": 1, "dtype": "float32"}).encode(), good],
                                       peer=b"greeted")
        assert reply["ok"] and len(payload) == 8
    finally:
        server.close()


def test_act_before_hello_is_refused(discrete_design):
    spec = load_spec(discrete_design)
    with policy_server(spec) as server:
        s = zmq.Context.instance().socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(server.address)
        s.send_multipart([json.dumps({"kind": "act", "n": 1, "dtype": "float32"}).encode(),
                          np.zeros((1, 4), np.float32).tobytes()])
        assert s.poll(5000)
        reply = json.loads(s.recv_multipart()[0])
        s.close(0)
    assert reply == {"ok": False, "error": "say hello first: this connection has not checked the design it talks to",
                     "handled": reply["handled"]}


def test_make_serve_uses_the_projects_environment_and_localhost():
    done = subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed", "serve", "DESIGN=x"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "HOST": "0.0.0.0"})
    command = done.stdout
    assert "--host 127.0.0.1" in command  # HOST from the environment does not open it; only HOST= on the command line
    assert command.split("\n")[1].split()[0] in (".venv-host/bin/python", ".venv/bin/python")

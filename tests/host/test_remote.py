"""The remote mode on loopback: a policy server (emulated backend) and its clients."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from host.backends.driver import FinnZynqDriver  # noqa: E402
from host.backends.emulated_board import EmulatedBackend  # noqa: E402
from host.errors import HostError  # noqa: E402
from host.backends.remote import RemotePolicy  # noqa: E402
from host.design.spec import load_spec  # noqa: E402
from tests.host.conftest import policy_server  # noqa: E402


@pytest.fixture
def served(discrete_design):
    """A policy server for the CartPole reference design on a free loopback port, in a thread."""
    spec = load_spec(discrete_design)
    with policy_server(spec) as server:
        yield spec, server


def _raw(address: str, frames: list[bytes], timeout_ms: int = 2000, hello=None) -> dict:
    """Send ``frames`` on a fresh REQ connection (after a hello for design ``hello``, where given); the reply header."""
    from host.backends.remote import design_identity

    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    if hello is not None:
        socket.send_multipart([json.dumps({"kind": "hello", "identity": design_identity(hello)}).encode(), b""])
        assert socket.poll(timeout_ms) and json.loads(socket.recv_multipart()[0])["ok"]
    socket.send_multipart(frames)
    assert socket.poll(timeout_ms), "the server did not answer"
    reply = json.loads(socket.recv_multipart()[0])
    socket.close(0)
    return reply


def test_remote_actions_are_the_local_drivers(served, discrete_design):
    spec, server = served
    local = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=64)
    client = RemotePolicy(spec, server.address)
    states = np.load(discrete_design / "states.npy")
    for i in range(0, 200):
        np.testing.assert_array_equal(client(states[i:i + 1]), local(states[i:i + 1]))
    np.testing.assert_array_equal(client(states[:50]), local(states[:50]))
    t = client.last_times
    assert t.accel > 0 and t.network > 0  # the fabric's call and the round trip around it, apart
    client.close()


def test_bad_requests_get_an_error_and_the_server_goes_on(served):
    spec, server = served
    obs_bytes = np.zeros((1, spec.obs_dim), dtype=np.float32).tobytes()

    def act(**header) -> bytes:
        return json.dumps({"kind": "act", "dtype": "float32", **header}).encode()

    cases = [
        ([b"not json", b""], "not JSON"),
        ([b"[1, 2]", b""], "not a JSON object"),
        ([json.dumps({"kind": "dance"}).encode(), b""], "unknown request kind"),
        ([act(n=2), obs_bytes], "are 32 bytes, got 16"),
        ([act(n=server.max_batch + 1), b""], "from 1 to"),
        ([act(n=True), obs_bytes], "from 1 to"),
        ([act(n=1), np.full(spec.obs_dim, np.nan, np.float32).tobytes()], "NaN or infinity"),
        ([act(n=1, dtype="int64"), np.zeros((1, spec.obs_dim), dtype=np.int64).tobytes()], "must be float32"),
        ([json.dumps({"kind": "act", "n": 1}).encode(), obs_bytes], "the header says 'None'"),
        ([b"only one frame"], "two frames"),
    ]
    for frames, expected in cases:
        reply = _raw(server.address, frames, hello=spec)
        assert reply["ok"] is False and expected in reply["error"], (frames, reply)
    reply = _raw(server.address, [act(n=1), obs_bytes])  # no hello on this connection
    assert reply["ok"] is False and "say hello first" in reply["error"]
    client = RemotePolicy(spec, server.address)  # and then it serves as before
    assert client(np.zeros((1, spec.obs_dim), dtype=np.float32)).shape == (1,)
    client.close()


def test_another_design_is_refused_at_the_handshake(served, discrete_design, tmp_path):
    spec, server = served
    other = load_spec(discrete_design)
    other.data["hashes"] = {**other.data["hashes"], "weights_npz_sha256": "0" * 64}
    with pytest.raises(HostError, match="weights_sha256 differ from the client's"):
        RemotePolicy(other, server.address)


def test_a_vanished_client_leaves_the_server_serving(served):
    spec, server = served
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    socket.send_multipart([json.dumps({"kind": "act", "n": 1}).encode(),
                           np.zeros((1, spec.obs_dim), dtype=np.float32).tobytes()])
    socket.close(0)  # gone before reading the answer, mid-episode
    client = RemotePolicy(spec, server.address)
    assert client(np.zeros((1, spec.obs_dim), dtype=np.float32)).shape == (1,)
    client.close()


def test_after_a_timeout_the_client_greets_the_server_again_on_its_new_connection(discrete_design):
    import time

    from host.backends.remote import PolicyServer

    spec = load_spec(discrete_design)
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=8)
    slow = {"calls": 0}

    def policy(obs):  # the first call outlasts the client's timeout, as a hung accelerator would
        slow["calls"] += 1
        if slow["calls"] == 1:
            time.sleep(1.0)
        return driver(obs)

    server = PolicyServer(spec, policy, "tcp://127.0.0.1:0")
    done = threading.Event()
    thread = threading.Thread(target=server.serve, kwargs={"stop": done.is_set}, daemon=True)
    thread.start()
    try:
        client = RemotePolicy(spec, server.address, timeout_s=0.3)
        obs = np.zeros((1, spec.obs_dim), dtype=np.float32)
        with pytest.raises(HostError, match="did not answer within 0.3 s"):
            client(obs)
        client.timeout_s = 5.0
        assert client(obs).shape == (1,)  # a new connection says hello before it acts
        client.close()
    finally:
        done.set()
        thread.join(timeout=5)
        server.close()


def test_a_silent_server_times_out_cleanly(discrete_design):
    spec = load_spec(discrete_design)
    silent = zmq.Context.instance().socket(zmq.ROUTER)
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind("tcp://127.0.0.1:0")
    address = silent.getsockopt_string(zmq.LAST_ENDPOINT)
    with pytest.raises(HostError, match=r"did not answer within 0.2 s"):
        RemotePolicy(spec, address, timeout_s=0.2)
    silent.close(0)


def test_several_clients_thousands_of_steps_every_reply_accounted_for(served, discrete_design):
    """A bounded load test on loopback: 4 clients x 1,500 calls, each answer checked against the local driver."""
    spec, server = served
    states = np.load(discrete_design / "states.npy")
    expected = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=len(states))(states)
    errors, answered = [], [0] * 4

    def client_loop(index: int) -> None:
        client = RemotePolicy(spec, server.address, timeout_s=10.0)
        try:
            for step in range(1500):
                i = (index * 97 + step) % len(states)
                if client(states[i:i + 1])[0] != expected[i]:
                    errors.append((index, step))
                answered[index] += 1
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append((index, repr(exc)))
        finally:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(4)]
    before = server.served
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and answered == [1500] * 4
    assert server.served - before == 4 * 1500


def test_compare_over_the_remote_backend_earns_the_emulated_backends_returns(discrete_design, tmp_path):
    """make serve (emulated backend) in one process, make compare BACKEND=remote in another, on loopback."""
    import socket as sockets
    import subprocess
    import sys

    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "host", "serve", "--design", str(discrete_design), "--backend",
                               "emulated", "--host", "127.0.0.1", "--port", str(port), "--idle-exit", "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in server.stdout.readline()
        common = ["--design", str(discrete_design), "--episodes", "5"]
        remote = subprocess.run([sys.executable, "-m", "host", "compare", *common, "--backend", "remote", "--board",
                                 f"127.0.0.1:{port}", "--out", str(tmp_path / "remote")], capture_output=True, text=True)
        assert remote.returncode == 0, remote.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=10)
    local = subprocess.run([sys.executable, "-m", "host", "compare", *common, "--out", str(tmp_path / "local")],
                           capture_output=True, text=True)
    assert local.returncode == 0, local.stderr[-2000:]
    there, here = (json.loads((tmp_path / d / "compare.json").read_text()) for d in ("remote", "local"))
    assert there["hardware"]["returns"] == here["hardware"]["returns"]
    assert there["software"]["integer reference (numpy)"]["step_agreement"] == 1.0
    assert there["latency"]["network"]["calls"] > 0 and "network round trip" in (tmp_path / "remote" / "compare.md").read_text()


def test_remote_without_a_board_address_is_one_sentence(discrete_design):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "host", "compare", "--design", str(discrete_design), "--backend", "remote"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "needs --board <host>:<port>" in done.stderr and "Traceback" not in done.stderr

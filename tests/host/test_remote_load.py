"""A writable design served over the network: clients send the policy package they compare
(``make serve ALLOW_LOAD=1``, ``compare --backend remote --policy``, ``board-table BACKEND=remote``).

The committed writable CartPole design and second student's package (tests/host/data/writable,
``make_writable_reference.py``) on the emulated fabric: a loaded policy computes exactly as it does
written locally, a package that does not check out is refused before anything is written, and no
client acts on a policy it did not expect.
"""

from __future__ import annotations

import json
import shutil
import socket as sockets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from host.backends.driver import FinnZynqDriver  # noqa: E402
from host.backends.emulated_board import EmulatedBackend  # noqa: E402
from host.backends.remote import PolicyServer, RemotePolicy, design_identity  # noqa: E402
from host.design.policy_package import load_package, package_files, switch_policy  # noqa: E402
from host.design.spec import load_spec  # noqa: E402
from host.errors import HostError  # noqa: E402
from tests.host.conftest import policy_server  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "writable"


def _design():
    return load_spec(DATA / "design")


def _actions(policy, states: np.ndarray) -> np.ndarray:
    return np.concatenate([policy(states[i:i + 50]) for i in range(0, len(states), 50)])


def test_a_sent_policy_computes_as_it_does_written_locally_and_is_sent_once():
    spec = _design()
    package = load_package(DATA / "policy", spec)
    states = np.load(DATA / "states.npy")
    board = EmulatedBackend(spec)
    local = FinnZynqDriver(spec, board, max_batch=50)
    switch_policy(board, local, package)
    with policy_server(spec, allow_load=True) as server:
        client = RemotePolicy(package.spec, server.address, package=package)
        assert server.loads == 1 and client.fabric == "emulated"
        assert client.loaded_policy["policy_sha256"] == package.sha256 and client.loaded_policy["flushed"]
        np.testing.assert_array_equal(_actions(client, states), _actions(local, states))
        again = RemotePolicy(package.spec, server.address, package=package)  # the server holds it already
        assert server.loads == 1 and again.loaded_policy["policy_sha256"] == package.sha256
        # A client comparing the design's own student is told what the accelerator holds instead.
        with pytest.raises(HostError, match=r"holds policy policy .*not design .*own student: compare with POLICY="):
            RemotePolicy(spec, server.address)
        client.close()
        again.close()


def test_a_server_that_does_not_allow_loads_refuses_in_one_sentence():
    spec = _design()
    package = load_package(DATA / "policy", spec)
    with policy_server(spec) as server:
        with pytest.raises(HostError, match="does not take policies from its clients: start it with make serve ALLOW_LOAD=1"):
            RemotePolicy(package.spec, server.address, package=package)
        own = RemotePolicy(spec, server.address)  # the design's own student needs no load
        assert own.loaded_policy is None and own(np.zeros((1, 4), dtype=np.float32)).shape == (1,)
        own.close()


def _server(spec, loader=None) -> PolicyServer:
    return PolicyServer(spec, FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=4), "tcp://127.0.0.1:0",
                        loader=loader, fabric="emulated")


def _load(server: PolicyServer, files: list[bytes], name: str = "p", sizes=None) -> dict:
    header = {"kind": "load", "name": name, "sizes": [len(f) for f in files] if sizes is None else sizes}
    return server.answer([json.dumps(header).encode(), b"".join(files)], peer=b"peer")[0]


def _hello(server: PolicyServer, spec) -> dict:
    return server.answer([json.dumps({"kind": "hello", "identity": design_identity(spec)}).encode(), b""], peer=b"peer")[0]


@pytest.mark.parametrize("damage, error", [
    (lambda f: {"name": "../up"}, "'name' must be"),
    (lambda f: {"sizes": [len(x) for x in f][:-1]}, "'sizes' must be"),
    (lambda f: {"sizes": [len(f[0]) + 10**7] + [len(x) for x in f[1:]]}, "'sizes' must be"),
    (lambda f: {"sizes": [len(f[0]) - 1] + [len(x) for x in f[1:]]}, "the sizes add up to"),
    (lambda f: {"files": [f[0]] + [f[1].replace(b"0", b"1", 1)] + f[2:]}, "does not match"),
    (lambda f: {"files": [f[0].replace(b'"signature_sha256": "', b'"signature_sha256": "0')] + f[1:]},
     "another architecture"),
    (lambda f: {"files": [b"[1, 2"] + f[1:]}, "cannot be read as JSON"),
])
def test_a_package_that_does_not_check_out_is_refused_before_anything_is_written(damage, error):
    spec = _design()
    package = load_package(DATA / "policy", spec)
    files = package_files(package)
    written = []
    server = _server(spec, loader=lambda p: written.append(p) or {"policy_sha256": p.sha256, "name": p.name})
    try:
        assert _hello(server, spec)["policy"]["policy_sha256"] == spec.data["runtime_weights"]["policy_sha256"]
        change = damage(files)
        reply = _load(server, change.get("files", files), name=change.get("name", "p"), sizes=change.get("sizes"))
        assert reply["ok"] is False and error in reply["error"], reply
        assert not written and server.loads == 0
        assert server.current["policy_sha256"] == spec.data["runtime_weights"]["policy_sha256"]
        assert _load(server, files)["ok"] and server.loads == 1 and server.current["policy_sha256"] == package.sha256
    finally:
        server.close()


def test_a_load_before_hello_and_an_act_on_another_policy_are_refused():
    spec = _design()
    package = load_package(DATA / "policy", spec)
    server = _server(spec, loader=lambda p: {"policy_sha256": p.sha256, "name": p.name})
    try:
        reply = _load(server, package_files(package))
        assert not reply["ok"] and "say hello first" in reply["error"]
        _hello(server, spec)
        assert _load(server, package_files(package))["ok"]
        own = spec.data["runtime_weights"]["policy_sha256"]
        act = {"kind": "act", "n": 1, "dtype": "float32", "policy": own}
        reply = server.answer([json.dumps(act).encode(), np.zeros(4, np.float32).tobytes()], peer=b"peer")[0]
        assert not reply["ok"] and "another client loaded it" in reply["error"]
        act["policy"] = package.sha256
        assert server.answer([json.dumps(act).encode(), np.zeros(4, np.float32).tobytes()], peer=b"peer")[0]["ok"]
    finally:
        server.close()


def test_a_load_that_fails_while_writing_leaves_no_client_acting():
    spec = _design()
    package = load_package(DATA / "policy", spec)

    def failing(_):
        raise HostError("the memory of MVAU_0 reads back 0x00000000 at word 3, 0x00000001 was written")

    server = _server(spec, loader=failing)
    try:
        _hello(server, spec)
        reply = _load(server, package_files(package))
        assert not reply["ok"] and "reads back" in reply["error"]
        for expected in (spec.data["runtime_weights"]["policy_sha256"], package.sha256):
            act = {"kind": "act", "n": 1, "dtype": "float32", "policy": expected}
            answer = server.answer([json.dumps(act).encode(), np.zeros(4, np.float32).tobytes()], peer=b"peer")[0]
            assert not answer["ok"] and "unknown: a load failed" in answer["error"]
    finally:
        server.close()


def _port() -> int:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_compare_sends_its_policy_to_a_server_that_allows_loads(tmp_path):
    """make serve ALLOW_LOAD=1 (emulated) in one process, compare --backend remote --policy in another."""
    design = tmp_path / "design"
    shutil.copytree(DATA / "design", design)
    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "host", "serve", "--design", str(design), "--backend", "emulated",
                               "--port", str(port), "--allow-load", "--idle-exit", "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "clients may load their policies" in server.stdout.readline()
        done = subprocess.run([sys.executable, "-m", "host", "compare", "--design", str(design), "--backend", "remote",
                               "--board", f"127.0.0.1:{port}", "--policy", str(DATA / "policy"), "--episodes", "3",
                               "--out", str(tmp_path / "remote")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
    report = json.loads((tmp_path / "remote" / "compare.json").read_text())
    assert report["policy"]["policy_sha256"] == load_package(DATA / "policy", _design()).sha256
    assert report["fabric"] == "emulated" and report["verdict"]["passed"]
    assert "(emulated fabric at 127.0.0.1:" in done.stdout and "loaded 1 policies" in out


@pytest.mark.parametrize("args, error", [
    (["--design", str(DATA.parent / "discrete"), "--allow-load"], "--allow-load needs a writable design"),
    (["--design", str(DATA / "design"), "--allow-load", "--host", "0.0.0.0"], "without --keys would let anyone"),
])
def test_serve_allows_loads_only_on_a_writable_design_and_loopback_or_keys(args, error):
    done = subprocess.run([sys.executable, "-m", "host", "serve", "--backend", "emulated", "--port", str(_port()), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and error in done.stderr and "Traceback" not in done.stderr

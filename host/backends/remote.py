"""The remote mode: the board serves its policy, the environment runs on another machine.

For environments the board's ARM cannot run (MuJoCo has no armv7 wheel, Box2D is not in the
board image), ``python -m host serve`` (``make serve``) answers observation → action over the
network, and ``python -m host compare --backend remote --board <host>:<port>`` runs the episode
loop elsewhere against it. The messaging is ZeroMQ (pyzmq, which the PYNQ image already has
for Jupyter): a ROUTER socket on the server, one REQ socket per client, so many clients are
served in turn and a client that vanishes costs the server nothing.

Messages are two frames, a JSON header and a binary body:

- ``hello`` — the client's ``accel.json`` hashes and observation size; the server answers with
  its design's, and refuses a design that is not the one it serves. A connection must say hello
  before it may ask for actions.
- ``act`` — ``n`` observations, their dtype in the header (``float32``, the only one taken), as
  ``n * obs_dim * 4`` bytes; the answer holds the actions (``dtype`` in its header: int64 for
  discrete, float32 for continuous designs) and the server's own split of the call (check, pack,
  accelerator, unpack), so the client can tell the network's round trip from the fabric's work.
  An accelerator timeout on the server is answered ``{"ok": false, "timeout": true}``; the client
  raises :class:`~host.errors.AcceleratorTimeout`, which stops that episode as the local path does.
  The header also names the policy the client expects (``policy``: its hash, for a writable
  design): a server now serving another one refuses, so no episode mixes two policies.
- ``load`` — a writable design only, and only where the server was started with ``--allow-load``
  (``make serve ALLOW_LOAD=1``): a policy package (``make load-policy``) as its files' bytes,
  ``policy.json`` then each memory's ``.dat`` file, their sizes in the header. The server checks it
  against its design exactly as a package on disk is checked (signature, every file's hash, the
  policy hash), writes it over AXI-lite, reads it back and flushes, and answers the record a
  report carries. ``make compare BACKEND=remote POLICY=`` and ``make board-table BACKEND=remote``
  send the student they compare; the hello's answer names the policy the server holds, so one
  already there is not sent again.

Hardening: the server binds 127.0.0.1 unless told otherwise, and takes policies from clients
only where it binds a loopback address or has keys; with keys (``make serve-keys``,
:func:`make_keys`) every connection is authenticated and encrypted by CurveZMQ and only the
authorised clients' keys get through. ``ZMQ_MAXMSGSIZE`` is the design's largest valid request,
(or its largest policy package, where it takes them), so a peer declaring a larger frame is
disconnected before anything is allocated; a peer that
connects and never completes the ZMTP handshake is dropped after :data:`HANDSHAKE_S`, one that
stops answering heartbeats after :data:`HEARTBEAT_TIMEOUT_S`, and one that answers heartbeats but
sends no request for ``idle_peer_s`` (default :data:`IDLE_PEER_S`) is disconnected by the server
(ZeroMQ's ROUTER has no call for that: the server learns each connection's descriptor from the
socket monitor and the messages' ``SRCFD``, and shuts that connection down), so idle peers cannot
hold every descriptor and lock correct clients out. A malformed, oversized or
unknown message is answered with ``{"ok": false, "error": ...}`` and the server goes on serving;
the client checks every reply (its keys, dtype, size and the actions' range) and waits at most
its timeout for one. Every ZeroMQ error is one sentence on both sides.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket as sockets
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from host.backends.driver import CallTimes
from host.errors import AcceleratorTimeout, HostError
from host.datapath.quantizer import NONFINITE

PROTOCOL = 3
MAX_BATCH = 4096  # observations in one message: anything larger is refused unread
REQUEST_DTYPE = "float32"
MAX_HEADER_BYTES = 4096
#: A connection that has not completed the ZMTP handshake by then is dropped (raw TCP, port scans).
HANDSHAKE_S = 2.0
#: Heartbeats: a PING every interval; a peer silent for the timeout is disconnected.
HEARTBEAT_IVL_S, HEARTBEAT_TIMEOUT_S = 1.0, 5.0
#: A connection that sends no request for this long is disconnected by the server.
IDLE_PEER_S = 60.0
#: How long a client waits for a ``load`` to be answered (written, read back and flushed on the board).
LOAD_TIMEOUT_S = 60.0
#: A policy's name, as it travels in a ``load`` header.
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Connections (by ZeroMQ routing id) remembered as having said hello; the oldest is forgotten beyond.
MAX_GREETED = 1024
TIMES_KEYS = ("check", "pack", "accel", "unpack")
#: The key pair files ``make serve-keys`` writes, and the folder of clients a server lets in.
SERVER_KEY, CLIENT_KEY, AUTHORIZED = "server", "client", "authorized_clients"


def _zmq():
    try:
        import zmq
    except ImportError:
        raise HostError("the remote mode needs pyzmq (the PYNQ image has it; elsewhere make host-env or "
                        "pip install pyzmq)") from None
    return zmq


def design_identity(spec) -> dict[str, Any]:
    """What a client and a server must agree on: the design's name, hashes and shapes."""
    return {"design": spec.data.get("design"), "weights_sha256": spec.data["hashes"]["weights_npz_sha256"],
            "obs_dim": spec.obs_dim, "discrete": spec.discrete, "protocol": PROTOCOL}


def largest_request(spec, max_batch: int) -> int:
    """Bytes of the largest valid request frame for ``spec``'s design: ``max_batch`` observations, or a header."""
    return max(max_batch * spec.obs_dim * 4, MAX_HEADER_BYTES)


def check_port(port: Any) -> int:
    """A TCP port number from 1 to 65535 (one sentence otherwise)."""
    try:
        value = int(str(port), 10)
    except ValueError:
        raise HostError(f"the port '{port}' is not a number: give one from 1 to 65535") from None
    if not 0 < value < 65536:
        raise HostError(f"the port {value} is outside 1..65535")
    return value


def board_address(board: str) -> str:
    """``tcp://host:port`` from ``--board host:port`` (one sentence for anything else)."""
    text = board.removeprefix("tcp://")
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([^:]+)", text)
    if not match:
        raise HostError(f"--board '{board}' is not <host>:<port> (e.g. 192.168.2.99:5555)")
    return f"tcp://{match.group(1)}:{check_port(match.group(2))}"


def zmq_sentence(exc: Exception, what: str) -> str:
    """One sentence for a ZeroMQ error while doing ``what``."""
    return f"{what} failed: {exc.strerror if hasattr(exc, 'strerror') and exc.strerror else exc}"


def make_keys(folder: Path) -> dict[str, Path]:
    """``make serve-keys``: a CurveZMQ key pair for the server and one for a client, in ``folder``.

    ``server.key`` / ``client.key`` are public, ``*.key_secret`` secret (mode 0600); the client's
    public key is copied into ``authorized_clients/``, the folder a server lets in. Existing keys are
    kept (one sentence says so) so that re-running does not lock out a deployed board.
    """
    zmq = _zmq()
    import zmq.auth

    if not zmq.has("curve"):
        raise HostError("this libzmq was built without CURVE security: install pyzmq's wheel, which has it")
    folder = Path(folder)
    if (folder / f"{SERVER_KEY}.key_secret").exists():
        raise HostError(f"{folder} already holds keys; remove it first to make new ones (deployed boards would need them)")
    (folder / AUTHORIZED).mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in (SERVER_KEY, CLIENT_KEY):
        public, secret = zmq.auth.create_certificates(str(folder), name)
        os.chmod(secret, 0o600)
        paths[name] = Path(public)
        paths[f"{name}_secret"] = Path(secret)
    authorized = folder / AUTHORIZED / f"{CLIENT_KEY}.key"
    authorized.write_bytes(paths[CLIENT_KEY].read_bytes())
    paths["authorized"] = authorized
    return paths


def _load_keys(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path.is_file():
        raise HostError(f"the key file {path} is missing: make serve-keys writes it (see docs/security.md)")
    try:
        public, private = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as exc:
        raise HostError(f"the key file {path} cannot be read ({exc})") from None
    if secret and not private:
        raise HostError(f"the key file {path} holds no secret key (use the .key_secret file)")
    return public, private


def _heartbeats(zmq, socket) -> None:
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.HEARTBEAT_IVL, int(HEARTBEAT_IVL_S * 1000))
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(HEARTBEAT_TIMEOUT_S * 1000))
    socket.setsockopt(zmq.HEARTBEAT_TTL, int(HEARTBEAT_TIMEOUT_S * 1000))
    socket.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_S * 1000))


@dataclass
class RemoteTimes(CallTimes):
    """One remote call: the server's split of its accelerator call, and the network round trip around it."""

    network: float = 0.0


class PolicyServer:
    """Serves ``policy`` (a driver: observations → actions, with ``last_times``) for ``spec``'s design.

    Args:
        spec: the design served (its identity is checked in every client's ``hello``).
        policy: the accelerator's policy, e.g. :class:`host.backends.driver.FinnZynqDriver`.
        address: where to bind, e.g. ``tcp://127.0.0.1:5555`` (``tcp://127.0.0.1:0`` picks a free port).
        keys: a folder of ``make serve-keys``: then only clients whose public key is in its
            ``authorized_clients/`` connect (CurveZMQ); None serves without authentication.
        max_batch: most observations in one request (sets ``ZMQ_MAXMSGSIZE``).
        idle_peer_s: a connection silent for this long is disconnected.
        loaded: a writable design: the record of the policy package written into it (None: its own student).
        loader: a writable design that takes policies from clients: writes a checked
            :class:`~host.design.policy_package.PolicyPackage` into the accelerator and returns its
            record (raises :class:`HostError` where it reads back wrong); None refuses every ``load``.
        fabric: what computes the actions, told to clients for their reports: ``pynq`` (silicon) or ``emulated``.
    """

    def __init__(self, spec, policy: Callable[[np.ndarray], np.ndarray], address: str, *,
                 keys: Path | None = None, max_batch: int = MAX_BATCH, idle_peer_s: float = IDLE_PEER_S,
                 loaded: dict[str, Any] | None = None, loader: Callable[[Any], dict[str, Any]] | None = None,
                 fabric: str = "pynq") -> None:
        zmq = _zmq()
        from host.design.policy_package import design_policy, largest_package

        self.spec, self.policy, self.identity = spec, policy, design_identity(spec)
        self.design = spec
        #: The policy the accelerator holds (a writable design): ``make load-policy``'s record, or its own student's.
        self.current: dict[str, Any] | None = loaded or design_policy(spec)
        self.loader, self.fabric = loader, fabric
        self.loads = 0
        self.idle_peer_s = idle_peer_s
        self.peers: dict[int, float] = {}  # a connection's descriptor -> when it last sent something
        self.dropped_idle = 0
        self._monitor = None
        self.max_batch = min(max_batch, MAX_BATCH)
        self.max_message = largest_request(spec, self.max_batch)
        #: The most bytes of each file of a ``load`` (None: this server takes no policies).
        self.package_limits = largest_package(spec) if loader is not None else None
        if self.package_limits is not None:
            self.max_message = max(self.max_message, sum(self.package_limits))
        self.context = zmq.Context.instance()
        self.authenticator = None
        self.greeted: OrderedDict[bytes, None] = OrderedDict()
        self.served = self.refused = 0
        self.socket = self.context.socket(zmq.ROUTER)
        try:
            _heartbeats(zmq, self.socket)
            self.socket.setsockopt(zmq.MAXMSGSIZE, self.max_message)
            if keys is not None:
                self._curve(zmq, Path(keys))
            self.socket.bind(address)
            self._monitor = self.socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED |
                                                           zmq.EVENT_CLOSED)
        except zmq.ZMQError as exc:
            self.close()
            if exc.errno == zmq.EADDRINUSE:
                raise HostError(f"{address} is in use: stop what listens there or choose another PORT") from None
            raise HostError(zmq_sentence(exc, f"listening at {address}")) from None
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def _curve(self, zmq, keys: Path) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        public, secret = _load_keys(keys / f"{SERVER_KEY}.key_secret", secret=True)
        clients = keys / AUTHORIZED
        if not clients.is_dir() or not any(clients.glob("*.key")):
            raise HostError(f"{clients} holds no client key: copy the client's public key there (make serve-keys)")
        self.authenticator = ThreadAuthenticator(self.context)
        self.authenticator.start()
        self.authenticator.configure_curve(domain="*", location=str(clients))
        self.socket.curve_server = True
        self.socket.curve_publickey, self.socket.curve_secretkey = public, secret

    def serve(self, *, max_messages: int | None = None, idle_s: float | None = None,
              stop: Callable[[], bool] | None = None) -> None:
        """Answer messages until ``max_messages`` were handled, ``idle_s`` passed without one, or ``stop()``."""
        zmq = _zmq()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        handled, last, swept = 0, time.monotonic(), time.monotonic()
        while max_messages is None or handled < max_messages:
            if stop is not None and stop():
                return
            ready = dict(poller.poll(100))
            now = time.monotonic()
            if self._monitor in ready or now - swept > 0.5:
                self._peer_events(zmq)
            if now - swept > 0.5:
                self._drop_idle(now)
                swept = now
            if self.socket not in ready:
                if idle_s is not None and now - last > idle_s:
                    return
                continue
            try:
                parts = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                continue
            try:
                self.peers[int(parts[0].get(zmq.SRCFD))] = time.monotonic()
            except (zmq.ZMQError, ValueError, TypeError):
                pass
            frames = [part.bytes for part in parts]
            # A REQ client's frames come as [identity, b"", header, body]; others may lack the delimiter.
            cut = 2 if len(frames) > 1 and frames[1] == b"" else 1
            envelope, body = frames[:cut], frames[cut:]
            t0 = time.perf_counter()
            header, payload = self.answer(body, peer=envelope[0])
            header["handled"] = time.perf_counter() - t0  # the server's own work on it, the driver's call included
            try:
                self.socket.send_multipart([*envelope, json.dumps(header).encode(), payload], zmq.NOBLOCK)
            except zmq.ZMQError:  # the peer is gone (or its queue full): nothing to answer
                pass
            handled, last = handled + 1, time.monotonic()

    def _peer_events(self, zmq) -> None:
        """Track connections from the socket monitor: accepted ones start their idle clock, closed ones stop it.

        Parsed here (a 6-byte frame: event uint16, value uint32; then the endpoint) rather than with
        ``zmq.utils.monitor``, which imports asyncio: nothing is imported while descriptors may run out.
        """
        while True:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames[0]) != 6:
                continue
            event, fd = struct.unpack("=HI", frames[0])
            if event == zmq.EVENT_ACCEPTED:
                self.peers[fd] = time.monotonic()
            else:
                self.peers.pop(fd, None)

    def _drop_idle(self, now: float) -> None:
        """Shut down the connections silent for ``idle_peer_s``: libzmq then sees them end and frees them."""
        for fd, seen in list(self.peers.items()):
            if now - seen <= self.idle_peer_s:
                continue
            del self.peers[fd]
            try:
                peer = sockets.socket(fileno=fd)  # no new descriptor: shut the connection down, then let go
            except OSError:
                continue
            try:
                peer.shutdown(sockets.SHUT_RDWR)
                self.dropped_idle += 1
            except OSError:
                pass
            finally:
                peer.detach()

    def answer(self, body: list[bytes], peer: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """The reply to one request's frames from connection ``peer`` (never raises: a bad request gets an error reply)."""
        try:
            if len(body) != 2:
                raise HostError(f"a request is two frames (header, body), got {len(body)}")
            if len(body[0]) > MAX_HEADER_BYTES:
                raise HostError(f"the request header is {len(body[0])} bytes, more than {MAX_HEADER_BYTES}")
            try:
                header = json.loads(body[0])
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise HostError("the request header is not JSON") from None
            if not isinstance(header, dict):
                raise HostError("the request header is not a JSON object")
            kind = header.get("kind")
            if kind == "hello":
                theirs = header.get("identity")
                theirs = theirs if isinstance(theirs, dict) else {}
                different = [k for k in self.identity if theirs.get(k) != self.identity[k]]
                if different:
                    raise HostError(f"this server serves design {self.identity['design']}, whose "
                                    f"{', '.join(different)} differ from the client's: copy the same design folder to both")
                self._greet(peer)
                return {"ok": True, "identity": self.identity, "policy": self.current, "fabric": self.fabric}, b""
            if kind not in ("act", "load"):
                raise HostError(f"unknown request kind {str(kind)[:40]!r} (hello, act or load)")
            if peer not in self.greeted:
                raise HostError("say hello first: this connection has not checked the design it talks to")
            if kind == "load":
                return {"ok": True, "loaded": self._load(header, body[1])}, b""
            self._check_policy(header)
            actions, times = self._act(header, body[1])
            self.served += 1
            return {"ok": True, "n": len(actions), "dtype": str(actions.dtype), "times": times}, actions.tobytes()
        except AcceleratorTimeout as exc:
            self.refused += 1
            return {"ok": False, "timeout": True, "error": str(exc)}, b""
        except HostError as exc:
            self.refused += 1
            return {"ok": False, "error": str(exc)}, b""
        except Exception as exc:  # noqa: BLE001  (a request must never stop the server)
            self.refused += 1
            return {"ok": False, "error": f"the server could not answer ({type(exc).__name__}: {exc})"}, b""

    def _greet(self, peer: bytes) -> None:
        self.greeted[peer] = None
        self.greeted.move_to_end(peer)
        while len(self.greeted) > MAX_GREETED:
            self.greeted.popitem(last=False)

    def _check_policy(self, header: dict[str, Any]) -> None:
        """Refuse an ``act`` that expects another policy than the accelerator holds (another client loaded one)."""
        held = self.current["policy_sha256"] if self.current is not None else None
        expected = header.get("policy")
        if expected != held:
            name = self.current.get("name") if self.current is not None else None
            raise HostError(f"the accelerator holds policy {name} ({str(held)[:12]}), not the one this client "
                            f"expects ({str(expected)[:12]}): another client loaded it; say hello and load yours again")

    def _load(self, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        """Check a policy package sent as its files' bytes and write it into the accelerator (``load``)."""
        from host.design.policy_package import POLICIES_DIR, check_package

        if self.loader is None:
            raise HostError("this server does not take policies from its clients: start it with make serve "
                            "ALLOW_LOAD=1 (a writable design), or with POLICY=<name> to serve that one")
        name, sizes, limits = header.get("name"), header.get("sizes"), self.package_limits
        if not isinstance(name, str) or not POLICY_NAME.fullmatch(name):
            raise HostError("'name' must be 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit")
        if not isinstance(sizes, list) or len(sizes) != len(limits) or not all(
                type(n) is int and 0 <= n <= most for n, most in zip(sizes, limits)):
            raise HostError(f"'sizes' must be {len(limits)} byte counts (policy.json, then each memory's .dat file) "
                            f"within the design's sizes {limits}")
        if sum(sizes) != len(payload):
            raise HostError(f"the sizes add up to {sum(sizes)} bytes, the body has {len(payload)}")
        chunks, start = [], 0
        for n in sizes:
            chunks.append(payload[start:start + n])
            start += n
        memories = self.design.data["runtime_weights"]["memories"]
        package = check_package(self.design.folder / POLICIES_DIR / name, chunks[0],
                                {m["dat_file"]: chunk for m, chunk in zip(memories, chunks[1:])}, self.design)
        try:
            record = self.loader(package)
        except Exception:
            # Part of it may be written: no client may act on the accelerator until a load succeeds.
            self.current = {"name": "unknown: a load failed", "policy_sha256": "unknown"}
            raise
        self.spec, self.current = package.spec, record
        self.loads += 1
        return record

    def _act(self, header: dict[str, Any], payload: bytes) -> tuple[np.ndarray, dict[str, float]]:
        n = header.get("n")
        if type(n) is not int or not 0 < n <= self.max_batch:
            raise HostError(f"'n' must be an integer from 1 to {self.max_batch}, got {str(n)[:40]}")
        if header.get("dtype") != REQUEST_DTYPE:
            raise HostError(f"the observations must be {REQUEST_DTYPE} (header 'dtype'), the header says "
                            f"{str(header.get('dtype'))[:40]!r}")
        expected = n * self.spec.obs_dim * 4
        if len(payload) != expected:
            raise HostError(f"{n} observations of {self.spec.obs_dim} float32 values are {expected} bytes, got {len(payload)}")
        obs = np.frombuffer(payload, dtype=np.float32).reshape(n, *self.spec.obs_shape)  # frames as frames
        actions = np.ascontiguousarray(self.policy(obs))
        actions = actions.astype(np.int64 if self.spec.discrete else np.float32, copy=False)
        split = getattr(self.policy, "last_times", None)
        times = {k: float(getattr(split, k, 0.0)) for k in TIMES_KEYS}
        return actions, times

    def close(self) -> None:
        """Stop listening."""
        if self._monitor is not None:
            try:
                self.socket.disable_monitor()
            except Exception:  # noqa: BLE001  (closing anyway)
                pass
            self._monitor.close(0)
            self._monitor = None
        self.socket.close(0)
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None


class RemotePolicy:
    """The policy of a design served elsewhere (:class:`PolicyServer`): observations → actions.

    The handshake on creation checks that the server serves ``spec``'s design; each call waits at
    most ``timeout_s`` for its answer (then :class:`AcceleratorTimeout`, which stops the episode,
    and the socket is made anew). ``keys``: a folder holding ``client.key_secret`` and the server's
    ``server.key`` (CurveZMQ); every reply is checked before it is used.

    ``package``: a writable design's policy package (``make load-policy``; ``spec`` is then its
    ``package.spec``): the accelerator must hold it, and where the server holds another one the
    package is sent (a ``load``, which the server must allow). Without one, the accelerator must
    hold the design's own student. ``loaded_policy`` is then the server's record of what it holds.
    """

    def __init__(self, spec, address: str, timeout_s: float = 2.0, keys: Path | None = None,
                 package: Any = None) -> None:
        from host.design.policy_package import design_policy

        self.spec, self.address, self.timeout_s = spec, address, timeout_s
        self.keys = Path(keys) if keys is not None else None
        self.identity = design_identity(spec)
        self.package = package
        own = design_policy(spec)
        #: The hash of the policy the accelerator must hold (None: a design with fixed weights).
        self.expected = package.sha256 if package is not None else (own["policy_sha256"] if own else None)
        self.loaded_policy: dict[str, Any] | None = None
        self.last_times = RemoteTimes()
        #: Seconds the server spent on the last request (parse, checks, the call, the reply), where it said.
        self.last_server_s: float | None = None
        self.calls = 0
        action = spec.data["action"]
        self._width = 1 if spec.discrete else int(action["n"])
        self._dtype = np.dtype(np.int64 if spec.discrete else np.float32)
        self._bounds = (0, int(action["n"]) - 1) if spec.discrete else \
            (np.asarray(action["low"], dtype=np.float32), np.asarray(action["high"], dtype=np.float32))
        self._connect()
        self._hello()

    def _hello(self) -> None:
        """Check the design the server serves, and that its accelerator holds the expected policy (or load it)."""
        reply, _ = self._request({"kind": "hello", "identity": self.identity}, b"")
        if reply.get("identity") != self.identity:
            raise HostError(f"the policy server at {self.address} sent a malformed reply (its hello names another design)")
        self.server_identity = reply["identity"]
        #: What computes the actions there, as the server says: "pynq" (silicon) or "emulated".
        self.fabric = reply["fabric"] if reply.get("fabric") in ("pynq", "emulated") else "unknown"
        held = reply.get("policy")
        if held is not None and not (isinstance(held, dict) and isinstance(held.get("policy_sha256"), str)):
            raise self._malformed("its hello's 'policy' is not a policy record")
        held_sha = held["policy_sha256"] if held is not None else None
        if held_sha != self.expected:
            if self.package is None:
                name = str(held.get("name"))[:100] if held is not None else "none"
                raise HostError(f"the policy server at {self.address} holds policy {name} ({str(held_sha)[:12]}), "
                                f"not design {self.identity['design']}'s own student: compare with POLICY= set to "
                                "that package (make load-policy), which also checks it")
            held = self._load()
        if self.package is not None:
            self.loaded_policy = held
        self._greeted = True

    def _load(self) -> dict[str, Any]:
        """Send the package (``load``); the server's record of what it wrote and read back."""
        from host.design.policy_package import package_files

        files = package_files(self.package)
        reply, _ = self._request({"kind": "load", "name": self.package.name, "sizes": [len(f) for f in files]},
                                 b"".join(files), timeout_s=max(self.timeout_s, LOAD_TIMEOUT_S))
        loaded = reply.get("loaded")
        if not isinstance(loaded, dict) or loaded.get("policy_sha256") != self.package.sha256:
            raise self._malformed(f"its record of the load is not policy {self.package.name}'s")
        return loaded

    def _connect(self) -> None:
        zmq = _zmq()
        self.socket = zmq.Context.instance().socket(zmq.REQ)
        try:
            _heartbeats(zmq, self.socket)
            # A REQ socket whose only pipe is gone (a refused CurveZMQ handshake) blocks in send for ever: bound it.
            self.socket.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
            self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_BATCH * max(8, 4 * self._width) + MAX_HEADER_BYTES)
            if self.keys is not None:
                server_public, _ = _load_keys(self.keys / f"{SERVER_KEY}.key", secret=False)
                public, secret = _load_keys(self.keys / f"{CLIENT_KEY}.key_secret", secret=True)
                self.socket.curve_serverkey, self.socket.curve_publickey, self.socket.curve_secretkey = \
                    server_public, public, secret
            self.socket.connect(self.address)
        except zmq.ZMQError as exc:
            self.socket.close(0)
            raise HostError(zmq_sentence(exc, f"connecting to the policy server at {self.address}")) from None

    def _request(self, header: dict[str, Any], payload: bytes,
                 timeout_s: float | None = None) -> tuple[dict[str, Any], bytes]:
        zmq = _zmq()
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        try:
            try:
                self.socket.send_multipart([json.dumps(header).encode(), payload])
            except zmq.Again:  # no peer took the request within the timeout: as if it never answered
                answered = False
            else:
                answered = self.socket.poll(int(timeout_s * 1000))
            frames = self.socket.recv_multipart() if answered else None
        except zmq.ZMQError as exc:
            self._reconnect()
            raise HostError(zmq_sentence(exc, f"talking to the policy server at {self.address}")) from None
        if frames is None:
            self._reconnect()  # a REQ socket that got no answer cannot send again: start over
            raise AcceleratorTimeout(f"the policy server at {self.address} did not answer within {timeout_s:g} s"
                                     + (" (are the CurveZMQ keys the server's?)" if self.keys else ""))
        try:
            reply = json.loads(frames[0])
        except (IndexError, UnicodeDecodeError, ValueError, RecursionError):
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool) or len(frames) != 2:
            raise HostError(f"the policy server at {self.address} sent a malformed reply (not a JSON object with 'ok' "
                            "and a body)")
        if not reply["ok"]:
            error = str(reply.get("error"))[:500]
            if reply.get("timeout") is True:
                raise AcceleratorTimeout(f"the policy server at {self.address}: {error}")
            raise HostError(f"the policy server at {self.address} refused: {error}")
        return reply, frames[1]

    def _reconnect(self) -> None:
        self.socket.close(0)
        self._connect()
        self._greeted = False  # a new connection: the server knows it only after its hello

    def _malformed(self, why: str) -> HostError:
        return HostError(f"the policy server at {self.address} sent a malformed reply ({why})")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch ``(n, obs_dim)`` of observations (or of frames, for a pixel design)."""
        x = np.ascontiguousarray(self.spec.rows(obs), dtype=np.float32)  # a frame of another shape stops here
        if not np.isfinite(x).all():
            raise HostError(NONFINITE)
        n = len(x)
        if not 0 < n <= MAX_BATCH:
            raise HostError(f"{n} observations in one call: the remote mode sends 1 to {MAX_BATCH}")
        if not self._greeted:
            self._hello()
        t0 = time.perf_counter()
        reply, payload = self._request({"kind": "act", "n": n, "dtype": REQUEST_DTYPE, "policy": self.expected},
                                       x.tobytes())
        round_trip = time.perf_counter() - t0
        actions = self._check_reply(reply, payload, n)
        times = {k: float(reply["times"][k]) for k in TIMES_KEYS}
        handled = reply.get("handled")
        self.last_server_s = float(handled) if type(handled) in (int, float) and 0 <= handled < round_trip else None
        server = self.last_server_s if self.last_server_s is not None else sum(times.values())
        self.last_times = RemoteTimes(**times, network=max(0.0, round_trip - server))
        self.calls += 1
        return actions[:, 0] if self.spec.discrete else actions

    def _check_reply(self, reply: dict[str, Any], payload: bytes, n: int) -> np.ndarray:
        if reply.get("n") != n or type(reply.get("n")) is not int:
            raise self._malformed(f"'n' is {str(reply.get('n'))[:20]}, not the {n} observations sent")
        if reply.get("dtype") != self._dtype.name:
            raise self._malformed(f"'dtype' is {str(reply.get('dtype'))[:20]!r}, not this design's {self._dtype.name}")
        times = reply.get("times")
        if not isinstance(times, dict) or not all(
                type(times.get(k)) in (int, float) and math.isfinite(times[k]) and times[k] >= 0 for k in TIMES_KEYS):
            raise self._malformed("'times' is not the four non-negative call times")
        if len(payload) != n * self._width * self._dtype.itemsize:
            raise self._malformed(f"{len(payload)} bytes of actions for {n} observations of {self._width} "
                                  f"{self._dtype.name} value(s)")
        actions = np.frombuffer(payload, dtype=self._dtype).reshape(n, self._width)
        low, high = self._bounds
        if self.spec.discrete:
            bad = (actions < low) | (actions > high)
        else:
            bad = ~np.isfinite(actions) | (actions < low) | (actions > high)
        if bad.any():
            raise self._malformed("an action outside the design's action space")
        return actions

    def close(self) -> None:
        """Close the connection."""
        self.socket.close(0)

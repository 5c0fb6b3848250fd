"""The remote mode: the board serves its policy, the environment runs on another machine.

For environments the board's ARM cannot run (MuJoCo has no armv7 wheel, Box2D is not in the
board image), ``python -m host serve`` (``make serve``) answers observation → action over the
network, and ``python -m host compare --backend remote --board <host>:<port>`` runs the episode
loop elsewhere against it. The messaging is ZeroMQ (pyzmq, which the PYNQ image already has
for Jupyter): a ROUTER socket on the server, one REQ socket per client, so many clients are
served in turn and a client that vanishes costs the server nothing.

Messages are two frames, a JSON header and a binary body:

- ``hello`` — the client's ``accel.json`` hashes and observation size; the server answers with
  its design's, and refuses a design that is not the one it serves.
- ``act`` — ``n`` observations as float32 (``n * obs_dim * 4`` bytes); the answer holds the
  actions (int64 for discrete, float32 for continuous designs) and the server's own split of the
  call (check, pack, accelerator, unpack), so the client can tell the network's round trip from
  the fabric's work.

A malformed, oversized or unknown message is answered with ``{"ok": false, "error": ...}`` and
the server goes on serving; a client waits at most its timeout for an answer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from host.backends.driver import CallTimes
from host.errors import HostError
from host.datapath.quantizer import NONFINITE

PROTOCOL = 1
MAX_BATCH = 4096  # observations in one message: anything larger is refused unread


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


@dataclass
class RemoteTimes(CallTimes):
    """One remote call: the server's split of its accelerator call, and the network round trip around it."""

    network: float = 0.0


class PolicyServer:
    """Serves ``policy`` (a driver: observations → actions, with ``last_times``) for ``spec``'s design.

    Args:
        spec: the design served (its identity is checked in every client's ``hello``).
        policy: the accelerator's policy, e.g. :class:`host.backends.driver.FinnZynqDriver`.
        address: where to bind, e.g. ``tcp://*:5555`` (``tcp://127.0.0.1:0`` picks a free port).
    """

    def __init__(self, spec, policy: Callable[[np.ndarray], np.ndarray], address: str) -> None:
        zmq = _zmq()
        self.spec, self.policy, self.identity = spec, policy, design_identity(spec)
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.served = self.refused = 0

    def serve(self, *, max_messages: int | None = None, idle_s: float | None = None,
              stop: Callable[[], bool] | None = None) -> None:
        """Answer messages until ``max_messages`` were handled, ``idle_s`` passed without one, or ``stop()``."""
        zmq = _zmq()
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        handled, last = 0, time.monotonic()
        while max_messages is None or handled < max_messages:
            if stop is not None and stop():
                return
            if not poller.poll(100):
                if idle_s is not None and time.monotonic() - last > idle_s:
                    return
                continue
            frames = self.socket.recv_multipart()
            # A REQ client's frames come as [identity, b"", header, body]; others may lack the delimiter.
            cut = 2 if len(frames) > 1 and frames[1] == b"" else 1
            envelope, body = frames[:cut], frames[cut:]
            header, payload = self.answer(body)
            self.socket.send_multipart([*envelope, json.dumps(header).encode(), payload])
            handled, last = handled + 1, time.monotonic()

    def answer(self, body: list[bytes]) -> tuple[dict[str, Any], bytes]:
        """The reply to one request's frames (never raises: a bad request gets an error reply)."""
        try:
            if len(body) != 2:
                raise HostError(f"a request is two frames (header, body), got {len(body)}")
            try:
                header = json.loads(body[0])
            except (UnicodeDecodeError, ValueError):
                raise HostError("the request header is not JSON") from None
            if not isinstance(header, dict):
                raise HostError("the request header is not a JSON object")
            kind = header.get("kind")
            if kind == "hello":
                theirs = header.get("identity", {})
                different = [k for k in self.identity if theirs.get(k) != self.identity[k]]
                if different:
                    raise HostError(f"this server serves design {self.identity['design']}, whose "
                                    f"{', '.join(different)} differ from the client's: copy the same design folder to both")
                return {"ok": True, "identity": self.identity}, b""
            if kind == "act":
                actions, times = self._act(header, body[1])
                self.served += 1
                return {"ok": True, "n": len(actions), "dtype": str(actions.dtype), "times": times}, actions.tobytes()
            raise HostError(f"unknown request kind {kind!r} (hello or act)")
        except HostError as exc:
            self.refused += 1
            return {"ok": False, "error": str(exc)}, b""
        except Exception as exc:  # noqa: BLE001  (a request must never stop the server)
            self.refused += 1
            return {"ok": False, "error": f"the server could not answer ({type(exc).__name__}: {exc})"}, b""

    def _act(self, header: dict[str, Any], payload: bytes) -> tuple[np.ndarray, dict[str, float]]:
        n = header.get("n")
        if not isinstance(n, int) or not 0 < n <= MAX_BATCH:
            raise HostError(f"'n' must be an integer from 1 to {MAX_BATCH}, got {n!r}")
        expected = n * self.spec.obs_dim * 4
        if len(payload) != expected:
            raise HostError(f"{n} observations of {self.spec.obs_dim} float32 values are {expected} bytes, got {len(payload)}")
        obs = np.frombuffer(payload, dtype=np.float32).reshape(n, *self.spec.obs_shape)  # frames as frames
        actions = np.ascontiguousarray(self.policy(obs))
        actions = actions.astype(np.int64 if self.spec.discrete else np.float32, copy=False)
        split = getattr(self.policy, "last_times", None)
        times = {k: float(getattr(split, k, 0.0)) for k in ("check", "pack", "accel", "unpack")}
        return actions, times

    def close(self) -> None:
        """Stop listening."""
        self.socket.close(0)


class RemotePolicy:
    """The policy of a design served elsewhere (:class:`PolicyServer`): observations → actions.

    The handshake on creation checks that the server serves ``spec``'s design; each call waits at
    most ``timeout_s`` for its answer (then :class:`HostError`, and the socket is made anew).
    """

    def __init__(self, spec, address: str, timeout_s: float = 2.0) -> None:
        self.spec, self.address, self.timeout_s = spec, address, timeout_s
        self.identity = design_identity(spec)
        self.last_times = RemoteTimes()
        self.calls = 0
        self._connect()
        reply, _ = self._request({"kind": "hello", "identity": self.identity}, b"")
        self.server_identity = reply["identity"]

    def _connect(self) -> None:
        zmq = _zmq()
        self.socket = zmq.Context.instance().socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(self.address)

    def _request(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        self.socket.send_multipart([json.dumps(header).encode(), payload])
        if not self.socket.poll(int(self.timeout_s * 1000)):
            self.socket.close(0)  # a REQ socket that got no answer cannot send again: start over
            self._connect()
            raise HostError(f"the policy server at {self.address} did not answer within {self.timeout_s:g} s")
        frames = self.socket.recv_multipart()
        try:
            reply = json.loads(frames[0])
        except (IndexError, ValueError):
            raise HostError(f"the policy server at {self.address} sent a malformed reply") from None
        if not reply.get("ok"):
            raise HostError(f"the policy server at {self.address} refused: {reply.get('error')}")
        return reply, frames[1] if len(frames) > 1 else b""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch ``(n, obs_dim)`` of observations (or of frames, for a pixel design)."""
        x = np.ascontiguousarray(self.spec.rows(obs), dtype=np.float32)  # a frame of another shape stops here
        if not np.isfinite(x).all():
            raise HostError(NONFINITE)
        t0 = time.perf_counter()
        reply, payload = self._request({"kind": "act", "n": len(x)}, x.tobytes())
        round_trip = time.perf_counter() - t0
        actions = np.frombuffer(payload, dtype=reply["dtype"])
        if len(actions) % len(x):
            raise HostError(f"the policy server at {self.address} answered {len(actions)} values for {len(x)} observations")
        times = reply["times"]
        self.last_times = RemoteTimes(**times, network=max(0.0, round_trip - sum(times.values())))
        self.calls += 1
        return actions.reshape(len(x), -1)[:, 0] if self.spec.discrete else actions.reshape(len(x), -1)

    def close(self) -> None:
        """Close the connection."""
        self.socket.close(0)

"""Fixtures of the host tests: the reference designs in tests/host/data/ (see make_reference.py)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(params=["discrete", "continuous"])
def reference(request) -> Path:
    """A reference design folder (CartPole-v1 2x32 w2a2, or Pendulum-v1 2x32 w4a4)."""
    return DATA / request.param


@pytest.fixture
def discrete_design() -> Path:
    """The CartPole-v1 reference design."""
    return DATA / "discrete"


@pytest.fixture
def pixel_design() -> Path:
    """The MinAtar Breakout-v1 reference design (one 3×3 convolution of 8 channels, 1×16, w2a2)."""
    return DATA / "pixels"


@contextmanager
def policy_server(spec, max_batch: int = 64, allow_load: bool = False):
    """A policy server for ``spec`` (emulated backend) on a free loopback port, serving in a thread;
    ``allow_load``: it takes policy packages from clients (``make serve ALLOW_LOAD=1``)."""
    import threading

    from host.backends.driver import FinnZynqDriver
    from host.backends.emulated_board import EmulatedBackend
    from host.backends.remote import PolicyServer
    from host.design.policy_package import switch_policy

    board = EmulatedBackend(spec)
    driver = FinnZynqDriver(spec, board, max_batch=max_batch)
    server = PolicyServer(spec, driver, "tcp://127.0.0.1:0", fabric="emulated",
                          loader=(lambda package: switch_policy(board, driver, package)) if allow_load else None)
    done = threading.Event()
    thread = threading.Thread(target=server.serve, kwargs={"stop": done.is_set}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        done.set()
        thread.join(timeout=5)
        server.close()

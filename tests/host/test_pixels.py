"""A pixel design on the host (the board's Python): MinAtar frames, the sliding window in the
emulator against FINN's recorded execution, binary packing, and frames that are refused."""

from __future__ import annotations

import numpy as np
import pytest

from host.backends.driver import FinnZynqDriver
from host.backends.emulated_board import EmulatedBackend
from host.backends.emulator import EmulatedAccelerator
from host.errors import HostError
from host.datapath.fast_path import BinaryFramePlan
from host.design.spec import load_spec


def test_minatar_runs_here_with_the_training_stages_episode_limit():
    from host.loop.envs import MINATAR_TIME_LIMIT, make_env

    env = make_env("MinAtar/Breakout-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (10, 10, 4) and obs.dtype == bool and env.spec.max_episode_steps == MINATAR_TIME_LIMIT
    env.close()


def test_the_emulator_reproduces_finns_sliding_window_and_mvaus(pixel_design):
    spec = load_spec(pixel_design)
    frames, expected = np.load(pixel_design / "states.npy"), np.load(pixel_design / "finn_outputs.npy")
    assert frames.shape == (400, 10, 10, 4) and frames.dtype == bool
    assert [layer["op"] for layer in spec.data["layers"]][0] == "ConvolutionInputGenerator"
    np.testing.assert_array_equal(EmulatedAccelerator(spec)(spec.preprocess(frames)).reshape(expected.shape), expected)


@pytest.mark.parametrize("gather", [False, True])
@pytest.mark.parametrize("batch", [1, 3, 16])
def test_binary_frames_pack_as_the_general_packer_does(pixel_design, batch, gather):
    spec = load_spec(pixel_design)
    frames = np.load(pixel_design / "states.npy")[:48]
    fast = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=batch)
    general = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=batch, fast=False)
    assert isinstance(fast.input_plan, BinaryFramePlan) and general.input_plan is None
    assert fast.input_plan.weights is not None  # a cell's 4 channel bits a byte: the matrix-product path
    if gather:  # the layout-agnostic path, for stream words of other widths
        fast.input_plan.weights = None
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        for given in (chunk, chunk.astype(np.float32), chunk.astype(np.uint8)):
            np.testing.assert_array_equal(fast.execute(given), general.execute(chunk))
            np.testing.assert_array_equal(fast.ibuf[:len(chunk)], general.ibuf[:len(chunk)])
    assert fast.ibuf.shape[1:] == tuple(spec.data["input"]["packed_shape"][1:])  # 4 channel bits a byte per cell


def test_the_driver_takes_one_frame_as_the_control_loop_sends_it(pixel_design):
    spec = load_spec(pixel_design)
    frames = np.load(pixel_design / "states.npy")[:20]
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=1)
    actions = np.concatenate([driver(frame) for frame in frames])
    np.testing.assert_array_equal(actions, spec.action_from_output(EmulatedAccelerator(spec)(spec.preprocess(frames))))


@pytest.mark.parametrize("fast", [True, False])
def test_frames_of_another_shape_or_with_other_values_are_refused(pixel_design, fast):
    spec = load_spec(pixel_design)
    driver = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=2, fast=fast)
    with pytest.raises(HostError, match="frame of shape \\(4, 10, 10\\) is not the 10×10×4"):
        driver(np.zeros((4, 10, 10), dtype=bool))
    with pytest.raises(HostError, match="frame of shape \\(10, 10, 3\\)"):
        driver(np.zeros((2, 10, 10, 3), dtype=bool))
    with pytest.raises(HostError, match="frame of shape \\(400,\\)"):
        driver(np.zeros(400, dtype=bool))
    for bad in (2.0, 0.5, -1.0, np.nan):
        frame = np.zeros((10, 10, 4), dtype=np.float32)
        frame[9, 0, 3] = bad
        with pytest.raises(HostError, match="other than 0 or 1"):
            driver(frame)
    with pytest.raises(HostError, match="other than 0 or 1"):
        driver(np.full((10, 10, 4), 7, dtype=np.uint8))
    before = driver.backend.frames_run
    assert before == 0  # nothing refused reached the fabric


def test_compare_refuses_a_classic_control_env_for_a_pixel_design(pixel_design, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "host", "compare", "--design", str(pixel_design), "--env", "CartPole-v1",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the environment's observations have shape (4,), flat observations, but design "
                                  "pixels takes frames (height × width × channels) of shape (10, 10, 4)")


def test_compare_on_the_emulated_board_plays_minatar(pixel_design, tmp_path):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "host", "compare", "--design", str(pixel_design), "--episodes", "3",
                           "--num-envs", "2", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "compare.json").read_text())
    ref = rep["software"]["integer reference (numpy)"]
    assert rep["env_id"] == "MinAtar/Breakout-v1" and ref["step_agreement"] == 1.0 and ref["identical_returns"] == 3


def test_the_remote_mode_serves_frames(pixel_design):
    pytest.importorskip("zmq")
    from host.backends.remote import RemotePolicy
    from tests.host.conftest import policy_server

    spec = load_spec(pixel_design)
    with policy_server(spec, max_batch=8) as server:
        client = RemotePolicy(spec, server.address)
        frames = np.load(pixel_design / "states.npy")[:40]
        local = FinnZynqDriver(spec, EmulatedBackend(spec), max_batch=8)
        for i in range(0, 40, 8):
            np.testing.assert_array_equal(client(frames[i:i + 8]), local(frames[i:i + 8]))
        np.testing.assert_array_equal(client(frames[0]), local(frames[0]))
        with pytest.raises(HostError, match="frame of shape \\(4, 10, 10\\)"):
            client(np.zeros((4, 10, 10), dtype=bool))
        client.close()

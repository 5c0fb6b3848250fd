"""MuJoCo continuous control end to end: a short HalfCheetah-v5 PPO teacher (observation
normalisation), a Gaussian QPD student, export, estimate, verification on real states, and the
emulated comparison, locally and through the remote backend on loopback."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from tests.conftest import FAST_DISTILL, exported_design

ENV = "HalfCheetah-v5"
DESIGN = "tiny-cheetah"


@pytest.fixture(scope="module")
def cheetah_teacher(tmp_path_factory):
    from training.teacher.train import train_teacher

    run_dir = tmp_path_factory.mktemp("runs") / ENV / "teacher"
    train_teacher(ENV, 0, run_dir=run_dir, steps=2048, eval_episodes=2)
    return run_dir


@pytest.fixture(scope="module")
def cheetah_student(cheetah_teacher, tmp_path_factory):
    from training.qpd.config import load_qpd_config
    from training.qpd.distill import distill

    cfg = load_qpd_config(env_id=ENV, hidden=[32, 32], weight_bits=3, schedule=[4, 3], updates=600,
                          final_stage_share=0.6, eval_episodes=2, **{**FAST_DISTILL, "stage_eval_episodes": 1})
    run_dir = tmp_path_factory.mktemp("runs") / ENV / "qpd"
    return run_dir, distill(cfg, cheetah_teacher, run_dir, quiet=True)


@pytest.fixture(scope="module")
def cheetah_design(cheetah_student, tmp_path_factory):
    with exported_design(cheetah_student[0], DESIGN, tmp_path_factory.mktemp("bitstreams")) as design:
        yield design


def test_the_teacher_normalises_observations_and_the_student_is_gaussian(cheetah_teacher, cheetah_student):
    from training.qpd.distill import STUDENT_FILE, load_student
    from training.teacher.policy import NORMALIZER_FILE

    assert (cheetah_teacher / NORMALIZER_FILE).exists()
    run_dir, results = cheetah_student
    student, _ = load_student(run_dir / STUDENT_FILE)
    assert not student.spec.discrete and student.spec.n_out == 6 and student.spec.obs_dim == 17
    assert results["student"] == "2x32-w3a3" and results["size"]["ratio"] < 0.005
    # The deployed action is the clipped mean: inside the action box on any state.
    from training.qpd.distill import StudentPolicy

    actions = StudentPolicy(student, -np.ones(6, np.float32), np.ones(6, np.float32))(
        np.random.default_rng(0).normal(size=(64, 17)).astype(np.float32) * 30)
    assert actions.shape == (64, 6) and np.abs(actions).max() <= 1.0


def test_export_estimate_and_verify_on_real_states(cheetah_design):
    from hw_build.verify import verify_design

    folder, export, est = cheetah_design
    assert export["parity"]["action_agreement"] == 1.0
    accel = json.loads((folder / "accel.json").read_text())
    assert [layer["op"] for layer in accel["layers"]] == ["MVAU"] * 3  # a continuous head: no LabelSelect
    action = accel["action"]
    assert action["kind"] == "continuous" and action["n"] == 6 and not action["argmax_in_hardware"]
    assert action["low"] == [-1.0] * 6 and action["output_scale"] > 0  # the output scale is the host's
    assert est.fits_comfortably
    record = verify_design(DESIGN, n_states=400)
    assert record["passed"] and {"1", "1q", "2", "3a", "3b"} <= {lv["level"] for lv in record["levels"]}


def test_the_emulated_comparison_and_the_remote_backend_play_the_student(cheetah_design):
    pytest.importorskip("zmq")
    from flow.compare import workstation_references
    from host.cli import compare
    from host.design.spec import load_spec
    from tests.host.conftest import policy_server

    folder, _, _ = cheetah_design

    def run(backend, board=None):
        return compare(argparse.Namespace(design=str(folder), backend=backend, episodes=2, num_envs=2,
                                          seed_start=1000, env=None, timeout=5.0, out=None, board=board),
                       workstation_references)

    local = run("emulated")
    for name in ("Brevitas student", "FINN hardware-layer graph (fed by the host quantizer)"):
        assert local["software"][name]["step_agreement"] == 1.0, name
    assert local["verdict"]["passed"] and local["verdict"]["reference"] == "Brevitas student"
    assert "float teacher (numpy)" in local["software"]
    with policy_server(load_spec(folder)) as server:
        remote = run("remote", board=server.address.removeprefix("tcp://"))
    assert remote["backend"] == "remote" and remote["software"]["Brevitas student"]["step_agreement"] == 1.0
    assert remote["hardware"]["returns"] == local["hardware"]["returns"]
    assert "network" in remote["latency"]  # the round trip, split from the fabric call

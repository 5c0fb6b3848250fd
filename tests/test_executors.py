"""Where trials and designs run: local processes and Ray give the same results; a failing task
is reported and the others go on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow.executors import TaskRunner, ray_started
from tests.conftest import FAST_DISTILL, REPO
from flow.experiments.table import qpd_table
from flow.experiments.trials import Trial, run_trials
from training.errors import FlowError


def square_or_fail(x: int) -> int:
    """A task for the tests: fails on 3, in two ways a task can."""
    if x == 3:
        raise FlowError("three is refused")
    if x == 4:
        raise ZeroDivisionError("four divides by zero")
    return x * x


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (this machine's cores) for the module's tests."""
    ray = pytest.importorskip("ray")
    ray_started()
    yield
    ray.shutdown()


def _outcomes(runner: TaskRunner) -> dict[int, tuple]:
    return {o.item: (o.result, o.error, o.exit_code) for o in runner.run(square_or_fail, [1, 2, 3, 4, 5], lambda x: (x,))}


@pytest.mark.parametrize("executor, jobs", [("process", 1), ("process", 2), ("ray", 1)])
def test_every_executor_reports_a_failing_task_and_runs_the_others(executor, jobs, request):
    if executor == "ray":
        request.getfixturevalue("local_ray")
    got = _outcomes(TaskRunner(executor, jobs))
    assert {k: v[0] for k, v in got.items() if v[1] is None} == {1: 1, 2: 4, 5: 25}
    assert got[3][1:] == ("three is refused", 2)
    assert got[4][1].startswith("ZeroDivisionError: four divides by zero at test_executors.py:") and got[4][2] == 1


def test_an_unknown_executor_is_one_sentence():
    with pytest.raises(FlowError, match="unknown executor 'slurm'; known: process, ray"):
        TaskRunner("slurm")


@pytest.mark.slow  # two grids, one of them through Ray (about 2 minutes); Ray's own path is covered by the fast tests below
def test_tiny_grid_on_ray_gives_the_process_executors_table(local_ray, cartpole_teacher, tmp_path):
    kwargs = dict(bits=[4], seeds=[0], methods=["ptq", "direct"], hidden=[8, 8], updates=600, episodes=3, jobs=1,
                  hardware=False, settings=FAST_DISTILL)
    here = qpd_table("CartPole-v1", cartpole_teacher, out_dir=tmp_path / "process", runs_dir=tmp_path / "runs-p",
                     **kwargs)
    on_ray = qpd_table("CartPole-v1", cartpole_teacher, out_dir=tmp_path / "ray", runs_dir=tmp_path / "runs-r",
                       executor="ray", **kwargs)
    assert json.dumps(on_ray["rows"]) == json.dumps(here["rows"])
    for a, b in zip(here["trials"], on_ray["trials"]):
        assert {k: v for k, v in a.items() if k not in ("run", "runs_dir", "wall_s")} == \
            {k: v for k, v in b.items() if k not in ("run", "runs_dir", "wall_s")}
    assert (tmp_path / "ray" / "qpd_table.md").read_bytes() == (tmp_path / "process" / "qpd_table.md").read_bytes()


def test_a_failing_trial_is_reported_and_the_grid_goes_on(local_ray, cartpole_teacher, tmp_path):
    good = Trial(env_id="CartPole-v1", method="ptq", bits=4, seed=0, episodes=2, teacher_dir=str(cartpole_teacher),
                 runs_dir=str(tmp_path / "runs"))
    bad = Trial(env_id="CartPole-v1", method="no-such-method", bits=4, seed=0, teacher_dir=str(cartpole_teacher),
                runs_dir=str(tmp_path / "runs"))
    with pytest.raises(FlowError, match=r"1 of 2 trials failed \(no-such-method-2x32-w4-s0; first: unknown method") as err:
        run_trials([bad, good], tmp_path / "trials", executor="ray")
    assert "run the same command again to retry" in str(err.value)
    assert json.loads((tmp_path / "trials" / f"{good.key}.json").read_text())["mean_return"] > 0
    assert not (tmp_path / "trials" / f"{bad.key}.json").exists()


def test_many_designs_at_once_exit_3_without_vivado_and_the_others_go_on(short_qpd_student, cartpole_teacher,
                                                                         tmp_path, monkeypatch):
    from flow.designs import build_designs

    monkeypatch.setenv("QPD_BITSTREAMS", str(tmp_path / "bitstreams"))
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    run = str(short_qpd_student[0])
    code = build_designs([run, str(cartpole_teacher)], bitstream=True, executor="process", jobs=2, out=tmp_path / "sum")
    assert code == 3
    rows = {r["run"]: r for r in json.loads((tmp_path / "sum" / "designs.json").read_text())["designs"]}
    built = rows[run]
    assert built["exit_code"] == 3 and "no Vivado" in built["status"] and built["LUT"] > 0
    assert (tmp_path / "bitstreams" / built["design"] / "accel.json").exists()  # as make export + make estimate make it
    failed = rows[str(cartpole_teacher)]
    assert failed["status"] == "failed" and failed["exit_code"] == 2 and "has no distilled student" in failed["error"]
    assert "| 3 |" in (tmp_path / "sum" / "designs.md").read_text()


def test_trials_sharing_a_key_run_in_one_call_filed_by_their_cache_names(cartpole_teacher, tmp_path):
    # The input-precision study's case: the key does not name the setting that differs.
    trials = [Trial(env_id="CartPole-v1", method="ptq", bits=b, seed=0, episodes=2, teacher_dir=str(cartpole_teacher),
                    runs_dir=str(tmp_path / "runs")) for b in (4, 4)]
    names = {id(trials[0]): "a", id(trials[1]): "b"}
    records = run_trials(trials, tmp_path / "trials", jobs=2, cache_name=lambda t: f"{names[id(t)]}/{t.key}")
    assert len(records) == 2
    assert {p.relative_to(tmp_path / "trials").as_posix() for p in (tmp_path / "trials").rglob("*.json")} == \
        {f"a/{trials[0].key}.json", f"b/{trials[0].key}.json"}


_DRIVER = '''
import os, sys, time
from pathlib import Path

def wait(folder):
    Path(folder, str(os.getpid())).write_text("")
    time.sleep(120)

if __name__ == "__main__":
    from flow.executors import TaskRunner
    for _ in TaskRunner("process", 2).run(wait, [sys.argv[1]] * 2, lambda folder: (folder,)):
        pass
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_local_workers_end_with_a_driver_killed_outright(tmp_path):
    """A frontier killed with SIGKILL (or by the OOM killer) leaves no worker training for nothing."""
    script, pids = tmp_path / "driver.py", tmp_path / "pids"
    script.write_text(_DRIVER)
    pids.mkdir()
    driver = subprocess.Popen([sys.executable, str(script), str(pids)], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, "the workers never started"
            time.sleep(0.2)
    finally:
        driver.kill()
        driver.wait()
    workers = [int(p.name) for p in pids.iterdir()]
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its driver"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

"""Training a PPO (or SAC) teacher with stable-baselines3, resumable and with a readable record.

Read top to bottom: settle the config, build the (optionally normalised) vector env, create or
resume the model, learn with a callback that draws the progress bar, records the learning
curve and writes resumable checkpoints, then save, evaluate on seeded episodes and summarise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from training import atomic
from training.teacher.config import algo_kwargs, check_algo, load_hyperparams, normalize_settings
from training.errors import FlowError
from training.evaluation import EVAL_SEED_START, eval_seeds, evaluate
from training.plots import plot_learning_curve
from training.runs import CONFIG_FILE, RESULTS_FILE, RUN_FORMAT_VERSION, runs_root, teacher_run_dir
from training.teacher.policy import NORMALIZER_FILE, TEACHER_FILE, ObsNormalizer, TeacherPolicy, load_model

log = logging.getLogger("training.teacher.policy")

CHECKPOINT_DIR = "checkpoint"
CURVE_FILE = "learning_curve.csv"
CURVE_FIELDS = ("timesteps", "wall_s", "ep_return_mean", "ep_len_mean", "episodes")
LOG_FILE = "train.log"
REPLAY_FILE = "replay_buffer.pkl"


def teacher_config(
    env_id: str,
    seed: int,
    *,
    steps: int | None = None,
    net_arch: list[int] | None = None,
    hyperparams_path: str | None = None,
    eval_episodes: int = 100,
    algo: str = "ppo",
) -> dict[str, Any]:
    """The full config of a teacher run: what ``config.yaml`` records and a rerun needs."""
    hp = load_hyperparams(env_id, hyperparams_path, check_algo(algo))
    if algo == "sac":
        from training.envs import env_info

        if env_info(env_id).discrete:
            raise FlowError(f"{env_id} has discrete actions: SAC teachers are for continuous ones (use ALGO=ppo)")
    if steps is not None:
        if steps <= 0:
            raise FlowError(f"--steps must be positive, got {steps}")
        hp["n_timesteps"] = int(steps)
    hp["n_timesteps"] = int(float(hp["n_timesteps"]))
    if net_arch is not None:
        hp.setdefault("policy_kwargs", {})["net_arch"] = {"pi": list(net_arch), "vf" if algo == "ppo" else "qf": list(net_arch)}
    return {
        "format_version": RUN_FORMAT_VERSION,
        "kind": "teacher",
        "algo": algo,
        "env_id": env_id,
        "seed": int(seed),
        "hyperparams": hp,
        "eval": {"episodes": int(eval_episodes), "seed_start": EVAL_SEED_START},
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3

    return {"torch": str(torch.__version__), "stable_baselines3": str(stable_baselines3.__version__),
            "gymnasium": str(gymnasium.__version__), "python": sys.version.split()[0]}


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("kind", "env_id", "seed", "hyperparams")
    return all(a.get(k) == b.get(k) for k in keys) and a.get("algo", "ppo") == b.get("algo", "ppo")


def _make_vec_env(config: dict[str, Any]):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    hp = config["hyperparams"]
    from training.envs import make_env

    env_id = config["env_id"]
    venv = make_vec_env(lambda: make_env(env_id), n_envs=int(hp.get("n_envs", 1)), seed=config["seed"],
                        vec_env_cls=DummyVecEnv)
    norm = normalize_settings(hp)
    if norm["norm_obs"] or norm["norm_reward"]:
        venv = VecNormalize(venv, gamma=float(hp.get("gamma", 0.99)), **norm)
    return venv


class TeacherCallback(BaseCallback):
    """Progress bar, learning curve and periodic resumable checkpoints."""

    def __init__(self, run_dir: Path, total: int, curve: list[dict], wall_offset: float,
                 checkpoint_every_steps: int, checkpoint_every_s: float = 60.0, algo: str = "ppo",
                 curve_every_steps: int = 0, desc: str | None = None) -> None:
        super().__init__()
        self.desc = desc
        self.run_dir, self.total, self.curve = run_dir, total, curve
        self.wall_offset = wall_offset
        self.every_steps, self.every_s = checkpoint_every_steps, checkpoint_every_s
        # PPO: a curve point per rollout; SAC's rollouts are single steps, so every N steps.
        self.algo, self.curve_every = algo, curve_every_steps
        self.bar: tqdm | None = None

    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()
        self.last_ckpt_steps, self.last_ckpt_t = self.num_timesteps, self.t0
        self.last_curve_steps = self.curve[-1]["timesteps"] if self.curve else 0
        self.bar = tqdm(total=self.total, initial=self.num_timesteps, unit="step", unit_scale=True,
                        desc=self.desc or f"{self.algo.upper()} teacher", dynamic_ncols=True, disable=None)

    def wall(self) -> float:
        """Seconds of training so far, across resumes."""
        return self.wall_offset + time.perf_counter() - self.t0

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(self.num_timesteps - self.bar.n)
        return True

    def _on_rollout_end(self) -> None:
        infos = list(self.model.ep_info_buffer)
        if infos and self.num_timesteps - self.last_curve_steps >= self.curve_every:
            self.last_curve_steps = self.num_timesteps
            row = {"timesteps": self.num_timesteps, "wall_s": round(self.wall(), 2),
                   "ep_return_mean": float(np.mean([e["r"] for e in infos])),
                   "ep_len_mean": float(np.mean([e["l"] for e in infos])), "episodes": len(infos)}
            self.curve.append(row)
            if self.bar is not None:
                self.bar.set_postfix(ep_return=f"{row['ep_return_mean']:.1f}")

    def _on_rollout_start(self) -> None:
        # Called after each PPO update (SAC: after each step's gradient step): model, optimiser
        # and statistics are consistent here.
        now = time.perf_counter()
        if (self.num_timesteps - self.last_ckpt_steps >= self.every_steps
                or now - self.last_ckpt_t >= self.every_s) and self.num_timesteps > 0:
            save_checkpoint(self.run_dir, self.model, self.curve, self.wall())
            self.last_ckpt_steps, self.last_ckpt_t = self.num_timesteps, now

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _model_bytes(model) -> bytes:
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def save_checkpoint(run_dir: Path, model, curve: list[dict], wall_s: float) -> None:
    """Write the resumable state: model (with optimiser), normaliser, SAC's replay buffer, curve, counters."""
    ckpt = run_dir / CHECKPOINT_DIR
    atomic.write_bytes(ckpt / "model.zip", _model_bytes(model))
    if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
        buf = io.BytesIO()
        model.save_replay_buffer(buf)
        atomic.write_bytes(ckpt / REPLAY_FILE, buf.getvalue())
    venv = model.get_env()
    if hasattr(venv, "obs_rms"):
        buf = io.BytesIO()
        import pickle

        pickle.dump(venv, buf)
        atomic.write_bytes(ckpt / "vecnormalize.pkl", buf.getvalue())
    write_curve(run_dir / CURVE_FILE, curve)
    # state.json last: its presence means the files above are complete.
    atomic.write_json(ckpt / "state.json", {"timesteps": int(model.num_timesteps), "wall_s": wall_s})
    log.info("checkpoint at %d steps", model.num_timesteps)


def load_checkpoint(run_dir: Path, venv, load: Callable[[Path], Any]) -> tuple[Any, Any, list[dict], float] | None:
    """What :func:`save_checkpoint` left in ``run_dir``, or None where it left nothing.

    ``venv``: the freshly made environment, whose normaliser (if any) is replaced by the saved
    one; ``load``: reads the model zip. Returns the model (set to the environment), the
    environment, the learning curve so far and the training seconds so far.
    """
    ckpt = run_dir / CHECKPOINT_DIR
    if not (ckpt / "state.json").exists():
        return None
    state = json.loads((ckpt / "state.json").read_text())
    model = load(ckpt / "model.zip")
    if (ckpt / REPLAY_FILE).exists():
        model.load_replay_buffer(ckpt / REPLAY_FILE)
    if (ckpt / "vecnormalize.pkl").exists():
        from stable_baselines3.common.vec_env import VecNormalize

        venv = VecNormalize.load(str(ckpt / "vecnormalize.pkl"), venv.venv)
    model.set_env(venv)
    return model, venv, read_curve(run_dir / CURVE_FILE), float(state["wall_s"])


def write_curve(path: Path, rows: list[dict]) -> None:
    """Write the learning curve CSV atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(path, buf.getvalue())


def read_curve(path: Path) -> list[dict]:
    """Read a learning curve CSV (empty list if absent)."""
    if not path.exists():
        return []
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("training").addHandler(handler)
    logging.getLogger("training").setLevel(logging.INFO)
    return handler


def train_teacher(
    env_id: str,
    seed: int = 0,
    *,
    run_dir: str | Path | None = None,
    steps: int | None = None,
    net_arch: list[int] | None = None,
    hyperparams_path: str | None = None,
    eval_episodes: int = 100,
    force: bool = False,
    threads: int = 1,
    algo: str = "ppo",
) -> dict[str, Any]:
    """Train (or resume, or find already trained) a PPO or SAC teacher; return its ``results.json`` data."""
    config = teacher_config(env_id, seed, steps=steps, net_arch=net_arch,
                            hyperparams_path=hyperparams_path, eval_episodes=eval_episodes, algo=algo)
    run_dir = Path(run_dir) if run_dir is not None else teacher_run_dir(env_id, seed, algo=algo)
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    config_path = run_dir / CONFIG_FILE
    if config_path.exists():
        from training.runs import read_run_config

        old = read_run_config(run_dir)
        if not _same_run(old, config):
            raise FlowError(f"{run_dir} holds a run with another config; pass FORCE=1 (--force) to replace it")
        if (run_dir / TEACHER_FILE).exists() and (run_dir / RESULTS_FILE).exists():
            results = json.loads((run_dir / RESULTS_FILE).read_text())
            print(f"teacher already trained in {run_dir}: {results['mean_return']:.2f} ± {results['std_return']:.2f} "
                  f"over {results['n_episodes']} episodes (FORCE=1 retrains)")
            return results
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_yaml(config_path, config)
    handler = _setup_logging(run_dir)
    torch.set_num_threads(threads)
    try:
        return _train(config, run_dir)
    finally:
        logging.getLogger("training").removeHandler(handler)
        handler.close()


def _train(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from stable_baselines3 import PPO, SAC

    env_id, hp = config["env_id"], config["hyperparams"]
    algo = config.get("algo", "ppo")
    total = int(hp["n_timesteps"])
    ckpt = run_dir / CHECKPOINT_DIR
    model_done = run_dir / TEACHER_FILE
    curve, wall_offset = [], 0.0

    if model_done.exists():
        log.info("model trained earlier; evaluating it")
        wall_offset = json.loads((ckpt / "state.json").read_text())["wall_s"] if (ckpt / "state.json").exists() else 0.0
    else:
        venv = _make_vec_env(config)
        resumed = load_checkpoint(run_dir, venv, lambda path: load_model(path, env_id, algo))
        if resumed is not None:
            model, venv, curve, wall_offset = resumed
            print(f"resuming {run_dir} at {model.num_timesteps:,} of {total:,} steps")
            log.info("resuming at %d steps", model.num_timesteps)
        else:
            model = {"ppo": PPO, "sac": SAC}[algo](hp.get("policy", "MlpPolicy"), venv, seed=config["seed"],
                                                   device="cpu", verbose=0, **algo_kwargs(env_id, hp, algo))
            log.info("training %s teacher for %d steps, seed %d", env_id, total, config["seed"])
        remaining = total - model.num_timesteps
        # SAC's checkpoint carries its replay buffer (up to 1M transitions): every 10 minutes, not every minute.
        callback = TeacherCallback(run_dir, total, curve, wall_offset, checkpoint_every_steps=max(total // 20, 1),
                                   checkpoint_every_s=60.0 if algo == "ppo" else 600.0, algo=algo,
                                   curve_every_steps=0 if algo == "ppo" else 1000)
        try:
            if remaining > 0:
                model.learn(remaining, callback=callback, reset_num_timesteps=False)
        except KeyboardInterrupt:
            done = json.loads((ckpt / "state.json").read_text())["timesteps"] if (ckpt / "state.json").exists() else 0
            raise KeyboardInterrupt(
                f"interrupted; the last checkpoint ({done:,} steps) is in {ckpt}: run the same command again to resume "
                "(without FORCE=1 / --force, which would start afresh)"
            ) from None
        wall_offset = callback.wall() if remaining > 0 else wall_offset
        save_checkpoint(run_dir, model, curve, wall_offset)  # so a crash during evaluation resumes here
        if hasattr(venv, "obs_rms"):
            ObsNormalizer.from_vecnormalize(venv).save(run_dir / NORMALIZER_FILE)
        atomic.write_bytes(model_done, _model_bytes(model))
        venv.close()
    if not curve:
        curve = read_curve(run_dir / CURVE_FILE)
    write_curve(run_dir / CURVE_FILE, curve)
    if curve:
        from training.envs import make_env

        spec = make_env(env_id).spec
        plot_learning_curve([r["timesteps"] for r in curve], [r["ep_return_mean"] for r in curve],
                            run_dir / "learning_curve.png", f"{algo.upper()} teacher on {env_id} (seed {config['seed']})",
                            threshold=spec.reward_threshold if spec else None)

    teacher = TeacherPolicy.load(run_dir, env_id)
    result = evaluate(teacher, env_id, eval_seeds(config["eval"]["episodes"], config["eval"]["seed_start"]),
                      progress=True, desc="evaluating teacher")
    results = {"format_version": config["format_version"], "policy": "teacher", "checkpoint": TEACHER_FILE,
               "train_timesteps": total, "train_wall_s": round(wall_offset, 1), **result.to_dict()}
    atomic.write_json(run_dir / RESULTS_FILE, results)
    shutil.rmtree(ckpt, ignore_errors=True)
    log.info("evaluation: %s", result.summary())
    print(f"teacher: {result.summary()}\n  trained {total:,} steps in {wall_offset:.0f} s; run folder {run_dir}")
    return results


def install_sigterm_as_interrupt() -> None:
    """Make SIGTERM (e.g. a cluster's time limit) stop training like Ctrl-C, keeping the checkpoint."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def ensure_teacher(env_id: str, teacher: str | None) -> Path:
    """The teacher run folder to distil from. Default: ``runs/<env>/<algo>-teacher-s0`` of the
    committed teacher's algorithm (PPO where there is none), copied from the committed teacher
    (:mod:`training.teacher.committed`) where the run folder is missing, else trained first."""
    from training.teacher.committed import default_committed_teacher, restore_committed_teacher

    if teacher is not None:
        restore_committed_teacher(env_id, Path(teacher))
        return Path(teacher)
    committed = default_committed_teacher(env_id)
    path = teacher_run_dir(env_id, 0) if committed is None else runs_root() / env_id / committed.name
    restore_committed_teacher(env_id, path)
    if not (path / RESULTS_FILE).exists():
        print(f"no teacher in {path}: training one first")
        train_teacher(env_id, 0, run_dir=path)
    return path

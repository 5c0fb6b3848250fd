"""A trained PPO teacher: loading it from its run folder and querying it.

The teacher is a stable-baselines3 PPO model plus, where the hyperparameters asked for
VecNormalize, the observation statistics it was trained with. :class:`TeacherPolicy` takes raw
observations everywhere, so callers (evaluation, distillation, export of the float forward
pass) never see the normalisation.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.envs import make_env
from training.errors import FlowError
from training.runs import check_run_env, read_run_config

TEACHER_FILE = "teacher.zip"
NORMALIZER_FILE = "obs_normalizer.npz"


@dataclass(frozen=True)
class ObsNormalizer:
    """VecNormalize's observation transform, frozen: ``clip((obs - mean) / sqrt(var + eps))``."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Normalise a batch (or one) of raw observations."""
        out = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the statistics as ``.npz`` (atomically)."""
        import io

        from training.atomic import write_bytes

        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, var=self.var, clip=self.clip, epsilon=self.epsilon)
        write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "ObsNormalizer":
        """Read statistics written by :meth:`save`."""
        try:
            with np.load(path) as data:
                return cls(data["mean"], data["var"], float(data["clip"]), float(data["epsilon"]))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise FlowError(f"{path} is corrupt: {exc}") from None

    @classmethod
    def from_vecnormalize(cls, vec_normalize) -> "ObsNormalizer":
        """Freeze the running statistics of a ``VecNormalize`` wrapper."""
        rms = vec_normalize.obs_rms
        return cls(
            np.asarray(rms.mean, dtype=np.float64).copy(),
            np.asarray(rms.var, dtype=np.float64).copy(),
            float(vec_normalize.clip_obs),
            float(vec_normalize.epsilon),
        )


def load_ppo(path: Path, env_id: str):
    """Load a stable-baselines3 PPO checkpoint, checking it fits ``env_id`` (raises :class:`FlowError`)."""
    from stable_baselines3 import PPO

    if not path.is_file():
        raise FlowError(f"checkpoint {path} does not exist")
    try:
        model = PPO.load(path, device="cpu")
    except Exception as exc:  # SB3 raises many types for a damaged zip; all mean the same to a user
        raise FlowError(f"checkpoint {path} is corrupt or not a stable-baselines3 PPO model ({type(exc).__name__})") from None
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    if model.observation_space.shape != obs_space.shape or getattr(model.action_space, "n", None) != getattr(
        act_space, "n", None
    ):
        raise FlowError(
            f"checkpoint {path} was trained on spaces {model.observation_space} / {model.action_space}, "
            f"which do not match {env_id}"
        )
    return model


class TeacherPolicy:
    """A PPO teacher that takes raw observations.

    Args:
        model: the stable-baselines3 PPO model.
        normalizer: observation statistics, or None when the teacher saw raw observations.
    """

    def __init__(self, model, normalizer: ObsNormalizer | None, env_id: str) -> None:
        self.model = model
        self.normalizer = normalizer
        self.env_id = env_id
        self.discrete = hasattr(model.action_space, "n")
        self.model.policy.set_training_mode(False)

    @classmethod
    def load(cls, run_dir: str | Path, env_id: str | None = None) -> "TeacherPolicy":
        """Load the teacher of a run folder; ``env_id`` (if given) must be the run's environment."""
        run_dir = Path(run_dir)
        config = read_run_config(run_dir)
        if config["kind"] != "teacher":
            raise FlowError(f"{run_dir} holds a {config['kind']} run, not a teacher")
        env_id = check_run_env(run_dir, config, env_id)
        path = run_dir / TEACHER_FILE
        if not path.exists():
            raise FlowError(f"run folder {run_dir} has no {TEACHER_FILE}: train it first (make teacher ENV={env_id})")
        model = load_ppo(path, env_id)
        norm_path = run_dir / NORMALIZER_FILE
        normalizer = ObsNormalizer.load(norm_path) if norm_path.exists() else None
        return cls(model, normalizer, env_id)

    def preprocess(self, obs: np.ndarray) -> torch.Tensor:
        """Raw observations (batch or single) to the tensor the network takes."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        return torch.as_tensor(obs, dtype=torch.float32)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray | int:
        """Deterministic action(s): argmax for discrete, the clipped Gaussian mean for continuous."""
        single = np.ndim(obs) == len(self.model.observation_space.shape)
        x = self.preprocess(np.asarray(obs)[None] if single else obs)
        actions = self.model.policy._predict(x, deterministic=True).cpu().numpy()
        if not self.discrete:
            actions = np.clip(actions, self.model.action_space.low, self.model.action_space.high)
        return (int(actions[0]) if self.discrete else actions[0]) if single else actions

    @torch.no_grad()
    def sample(self, obs: np.ndarray) -> np.ndarray:
        """Stochastic actions for a batch (the teacher's own exploration), clipped to the bounds."""
        actions = self.model.policy._predict(self.preprocess(obs), deterministic=False).cpu().numpy()
        if not self.discrete:
            actions = np.clip(actions, self.model.action_space.low, self.model.action_space.high)
        return actions

    def __call__(self, obs: np.ndarray):
        """Alias of :meth:`act`, so a teacher is a policy for :func:`training.evaluation.evaluate`."""
        return self.act(obs)

    @torch.no_grad()
    def targets(self, obs: np.ndarray) -> dict[str, torch.Tensor]:
        """Distillation targets for a batch of raw observations.

        Returns ``logits`` (discrete) or ``mean`` and ``log_std`` (continuous), and ``value``.
        """
        x = self.preprocess(obs)
        policy = self.model.policy
        dist = policy.get_distribution(x)
        out: dict[str, torch.Tensor] = {"value": policy.predict_values(x).squeeze(-1)}
        if self.discrete:
            out["logits"] = dist.distribution.logits
        else:
            out["mean"] = dist.distribution.mean
            out["log_std"] = torch.log(dist.distribution.stddev)
        return out

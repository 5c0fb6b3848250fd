"""A trained teacher: loading it from its run folder and querying it.

The teacher is a stable-baselines3 PPO (or SAC) model plus, where the hyperparameters asked for
VecNormalize, the observation statistics it was trained with. It comes from one of this
project's run folders, or from a user's own SB3 ``.zip`` or rl-baselines3-zoo log folder
(:mod:`training.teacher.external`; pickles: trusted teachers only). :class:`TeacherPolicy` takes raw
observations everywhere, so callers (evaluation, distillation, export of the float forward
pass) never see the normalisation, nor which algorithm trained the teacher.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.envs import make_env
from training.errors import FlowError
from training.runs import CONFIG_FILE, check_run_env, read_run_config

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
            with np.load(path, allow_pickle=False) as data:
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


def safe_custom_objects(path: Path, env_id: str, algo: str, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """What stands in for every pickled entry of an SB3 zip, so that loading it unpickles nothing.

    An SB3 zip's ``data`` is JSON, but the entries JSON cannot hold (the spaces, the policy class and
    its keyword arguments, schedules, buffers) are cloudpickled in it; SB3 takes any of them from
    ``custom_objects`` instead of unpickling it. They are rebuilt here from what the run recorded
    (``config.yaml``'s hyperparameters) and the environment; the networks' weights are ``.pth``
    files SB3 reads with ``torch.load(weights_only=True)``. Inference needs nothing else: buffers
    and the last observations become None.
    """
    import json as json_module

    from stable_baselines3 import PPO, SAC

    from training.teacher.config import algo_kwargs

    try:
        with zipfile.ZipFile(path) as archive:
            data = json_module.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FlowError(f"checkpoint {path} is corrupt or not a stable-baselines3 zip ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise FlowError(f"checkpoint {path} is corrupt: its data is not a JSON object")
    cls = {"ppo": PPO, "sac": SAC}[algo]
    kwargs = algo_kwargs(env_id, hyperparams, algo)
    env = make_env(env_id)
    _check_recorded_spaces(path, data, env, env_id)
    known = {"observation_space": env.observation_space, "action_space": env.action_space,
             "policy_class": cls.policy_aliases.get(hyperparams.get("policy", "MlpPolicy"), cls.policy_aliases["MlpPolicy"]),
             "policy_kwargs": kwargs.get("policy_kwargs", {}),
             "learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": 0.0, "clip_range_vf": None,
             "train_freq": kwargs.get("train_freq", 1)}
    env.close()
    return {key: known.get(key) for key, value in data.items() if isinstance(value, dict) and ":serialized:" in value}


def _check_recorded_spaces(path: Path, data: dict[str, Any], env, env_id: str) -> None:
    """Refuse a zip whose spaces (SB3 writes their shape and size as plain text beside the pickle) are not ``env_id``'s."""
    import json as json_module

    def recorded(key: str) -> tuple[Any, Any]:
        entry = data.get(key) if isinstance(data.get(key), dict) else {}
        shape = entry.get("_shape")
        if isinstance(shape, str):
            try:
                shape = json_module.loads(shape)
            except ValueError:
                shape = None
        shape = shape if isinstance(shape, list) else None
        return shape, entry.get("n")

    obs_shape, _ = recorded("observation_space")
    act_shape, act_n = recorded("action_space")
    want_n = getattr(env.action_space, "n", None)
    if (obs_shape is not None and tuple(obs_shape) != env.observation_space.shape) or \
            (act_shape is not None and tuple(act_shape) != env.action_space.shape) or \
            (act_n is not None and (want_n is None or str(act_n) != str(int(want_n)))):
        env.close()
        raise FlowError(f"checkpoint {path} was trained on observations of shape {tuple(obs_shape or ())} and "
                        f"{'actions ' + str(act_n) if act_n is not None else 'actions of shape ' + str(tuple(act_shape or ()))}"
                        f", which do not match {env_id}")


def load_model(path: Path, env_id: str, algo: str = "ppo", hyperparams: dict[str, Any] | None = None):
    """Load a stable-baselines3 PPO or SAC checkpoint, checking it fits ``env_id`` (raises :class:`FlowError`).

    With ``hyperparams`` (the run's ``config.yaml`` records them), nothing in the zip is unpickled
    (:func:`safe_custom_objects`): the way every evaluation loads a teacher. Without them SB3
    unpickles the zip's pickled entries: only ``make teacher`` resuming its own checkpoint does that.
    """
    from stable_baselines3 import PPO, SAC

    if not path.is_file():
        raise FlowError(f"checkpoint {path} does not exist")
    custom = safe_custom_objects(path, env_id, algo, hyperparams) if hyperparams is not None else None
    try:
        model = {"ppo": PPO, "sac": SAC}[algo].load(path, device="cpu", custom_objects=custom)
    except Exception as exc:  # SB3 raises many types for a damaged zip; all mean the same to a user
        raise FlowError(f"checkpoint {path} is corrupt or not a stable-baselines3 {algo.upper()} model "
                        f"({type(exc).__name__})") from None
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    from training.teacher.external import check_action_kind

    check_action_kind(path, model.action_space, act_space, env_id)
    if model.observation_space.shape != obs_space.shape or getattr(model.action_space, "n", None) != getattr(
        act_space, "n", None
    ) or model.action_space.shape != act_space.shape:
        raise FlowError(
            f"checkpoint {path} was trained on spaces {model.observation_space} / {model.action_space}, "
            f"which do not match {env_id}"
        )
    return model


@dataclass
class ActorLayers:
    """A teacher's deployed actor, the parts every consumer (size, PTQ, numpy export) walks.

    ``extractor``: the feature extractor (a MinAtar CNN, or a flatten); ``linears``: the MLP's
    layers, then the output head (logits or Gaussian mean); ``activation``: the MLP's activation
    module class (``None`` without hidden layers); ``squash``: the action is the head's output
    through tanh, rescaled to the action box (SAC), rather than the output clipped to it (PPO).
    """

    extractor: Any
    linears: list
    activation: type | None
    squash: bool = False


class TeacherPolicy:
    """A PPO or SAC teacher that takes raw observations.

    Args:
        model: the stable-baselines3 PPO or SAC model.
        normalizer: observation statistics, or None when the teacher saw raw observations.

    A SAC actor's Gaussian lives before a tanh that squashes it into the action box. Its
    deterministic action is ``rescale(tanh(μ))``; the distillation targets (:meth:`targets`) are
    that action as the mean and the first-order (delta-method) std of the squashed Gaussian,
    ``std · (1 − tanh²(μ)) · (high − low) / 2``, and ``Q(s, μ(s))`` (the smaller of the twin
    critics) as the value.
    """

    def __init__(self, model, normalizer: ObsNormalizer | None, env_id: str) -> None:
        from stable_baselines3 import SAC

        self.model = model
        self.normalizer = normalizer
        self.env_id = env_id
        self.algo = "sac" if isinstance(model, SAC) else "ppo"
        self.discrete = hasattr(model.action_space, "n")
        self.model.policy.set_training_mode(False)

    @classmethod
    def load(cls, run_dir: str | Path, env_id: str | None = None) -> "TeacherPolicy":
        """Load the teacher of a run folder, an SB3 ``.zip`` or a zoo log folder; ``env_id`` (if
        given) must be the teacher's environment."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            return cls._load_external(run_dir, env_id)
        config = read_run_config(run_dir)
        if config["kind"] != "teacher":
            raise FlowError(f"{run_dir} holds a {config['kind']} run, not a teacher")
        env_id = check_run_env(run_dir, config, env_id)
        path = run_dir / TEACHER_FILE
        if not path.exists():
            raise FlowError(f"run folder {run_dir} has no {TEACHER_FILE}: train it first (make teacher ENV={env_id})")
        model = load_model(path, env_id, config.get("algo", "ppo"), hyperparams=config.get("hyperparams") or {})
        norm_path = run_dir / NORMALIZER_FILE
        normalizer = ObsNormalizer.load(norm_path) if norm_path.exists() else None
        return cls(model, normalizer, env_id)

    @classmethod
    def _load_external(cls, path: Path, env_id: str | None) -> "TeacherPolicy":
        """A user's SB3 ``.zip`` or zoo folder (:mod:`training.teacher.external`), with its VecNormalize."""
        from stable_baselines3.common.torch_layers import FlattenExtractor

        from training.teacher.external import find_external, load_vecnormalize

        found = find_external(path, env_id)
        model = load_model(found.model, found.env_id, found.algo)
        policy = model.policy
        extractor = policy.actor.features_extractor if found.algo == "sac" else policy.pi_features_extractor
        if not isinstance(extractor, FlattenExtractor):
            raise FlowError(f"teacher {path} reads its observations with a {type(extractor).__name__}; "
                            "a user's teacher must be an MlpPolicy")
        normalizer = None
        if found.vecnormalize is not None:
            vec = load_vecnormalize(found.vecnormalize)
            if vec.norm_obs:
                normalizer = ObsNormalizer.from_vecnormalize(vec)
                if normalizer.mean.shape != model.observation_space.shape:
                    raise FlowError(f"{found.vecnormalize} normalises observations of shape {normalizer.mean.shape}, "
                                    f"the teacher takes {model.observation_space.shape}")
        return cls(model, normalizer, found.env_id)

    def fingerprint(self) -> str:
        """SHA-256 of the policy network's weights (every tensor of its state dict, in order, with its
        name) and of the observation statistics: the same figure for the same teacher however its
        file was zipped, a different one for a retrained teacher whose returns happen to match."""
        import hashlib

        digest = hashlib.sha256()
        for name, tensor in self.model.policy.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        if self.normalizer is not None:
            for array in (self.normalizer.mean, self.normalizer.var):
                digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
            digest.update(np.array([self.normalizer.clip, self.normalizer.epsilon], dtype=np.float64).tobytes())
        return digest.hexdigest()

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
        actions = self._actions(x, deterministic=True)
        return (int(actions[0]) if self.discrete else actions[0]) if single else actions

    @torch.no_grad()
    def sample(self, obs: np.ndarray) -> np.ndarray:
        """Stochastic actions for a batch (the teacher's own exploration), clipped to the bounds."""
        return self._actions(self.preprocess(obs), deterministic=False)

    def _actions(self, x: torch.Tensor, deterministic: bool) -> np.ndarray:
        actions = self.model.policy._predict(x, deterministic=deterministic).cpu().numpy()
        if self.discrete:
            return actions
        if self.algo == "sac":  # squashed into [-1, 1] by the tanh: to the action box
            actions = self.model.policy.unscale_action(actions)
        return np.clip(actions, self.model.action_space.low, self.model.action_space.high)

    def __call__(self, obs: np.ndarray):
        """Alias of :meth:`act`, so a teacher is a policy for :func:`training.evaluation.evaluate`."""
        return self.act(obs)

    def actor_layers(self) -> ActorLayers:
        """The actor the flow deploys and counts (see :class:`ActorLayers`)."""
        import torch.nn as nn

        policy = self.model.policy
        if self.algo == "sac":
            actor = policy.actor
            acts = [type(m) for m in actor.latent_pi if not isinstance(m, nn.Linear)]
            return ActorLayers(actor.features_extractor, [m for m in actor.latent_pi if isinstance(m, nn.Linear)]
                               + [actor.mu], acts[0] if acts else None, squash=True)
        net = policy.mlp_extractor.policy_net
        acts = [type(m) for m in net if not isinstance(m, nn.Linear)]
        return ActorLayers(policy.pi_features_extractor, [m for m in net if isinstance(m, nn.Linear)] + [policy.action_net],
                           acts[0] if acts else None)

    def targets(self, obs: np.ndarray, batch: int = 8192) -> dict[str, torch.Tensor]:
        """Distillation targets for a batch of raw observations, ``batch`` of them per forward pass.

        Returns ``logits`` (discrete) or ``mean`` and ``log_std`` (continuous), and ``value``.
        One pass over a whole distillation memory (500,000 Space Invaders frames) would hold every
        convolution's activations at once: over 6 GB a trial, so three trials side by side want
        more than 18 GB. In passes of ``batch`` the peak stays near the memory itself.
        """
        if len(obs) <= batch:
            return self._targets_of(obs)
        parts = [self._targets_of(obs[i:i + batch]) for i in range(0, len(obs), batch)]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    @torch.no_grad()
    def _targets_of(self, obs: np.ndarray) -> dict[str, torch.Tensor]:
        """:meth:`targets` of one forward pass."""
        x = self.preprocess(obs)
        policy = self.model.policy
        if self.algo == "sac":
            return self._sac_targets(x)
        dist = policy.get_distribution(x)
        out: dict[str, torch.Tensor] = {"value": policy.predict_values(x).squeeze(-1)}
        if self.discrete:
            out["logits"] = dist.distribution.logits
        else:
            out["mean"] = dist.distribution.mean
            out["log_std"] = torch.log(dist.distribution.stddev)
        return out

    def _sac_targets(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        policy = self.model.policy
        mu, log_std, _ = policy.actor.get_action_dist_params(x)
        squashed = torch.tanh(mu)
        low = torch.as_tensor(self.model.action_space.low, dtype=torch.float32)
        high = torch.as_tensor(self.model.action_space.high, dtype=torch.float32)
        half = (high - low) / 2
        q = torch.cat(policy.critic(x, squashed), dim=1).min(dim=1).values  # the critics take squashed actions
        return {"value": q, "mean": low + (squashed + 1) * half,
                "log_std": log_std + torch.log1p(-squashed.pow(2).clamp(max=1 - 1e-6)) + torch.log(half)}


def teacher_env_id(path: str | Path) -> str | None:
    """The environment a teacher (run folder, SB3 ``.zip`` or zoo folder) was trained on; None
    where its files do not say (a ``.zip`` whose name holds no environment id)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return read_run_config(path)["env_id"]
    from training.teacher.external import find_external

    return find_external(path, None, require_env=False).env_id

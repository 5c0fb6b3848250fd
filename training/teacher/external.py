"""A user's own teacher: a stable-baselines3 ``.zip`` (PPO or SAC) or an rl-baselines3-zoo log folder.

``make distill TEACHER=<path>`` takes, besides this project's teacher run folders:

- a stable-baselines3 ``.zip`` saved by ``model.save`` (PPO or SAC, an MLP policy), with its
  ``VecNormalize`` statistics where they lie beside it (``vecnormalize.pkl``,
  ``vec_normalize.pkl`` or ``<zip stem>_vecnormalize.pkl``, or in ``<env id>/``);
- an rl-baselines3-zoo experiment folder, ``logs/<algo>/<env>_<n>/``: ``<env>.zip``, and
  ``<env>/vecnormalize.pkl``, ``<env>/args.yml``, ``<env>/config.yml``.

The environment id is read from the zoo's ``args.yml`` or from the file name
(``CartPole-v1.zip``, ``ppo-CartPole-v1.zip``), or given (``ENV=``); a teacher for another
environment, or whose actions are of another kind, is refused in one sentence.

**Security:** an SB3 ``.zip`` and a ``vecnormalize.pkl`` hold Python pickles, which can run
code when loaded. Load only teachers you trust. (The zoo's YAML files are read without
running anything: their ``OrderedDict`` tags become plain mappings.)
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training.errors import FlowError

VECNORMALIZE_NAMES = ("vecnormalize.pkl", "vec_normalize.pkl")


@dataclass(frozen=True)
class ExternalTeacher:
    """Where a user's teacher's files are, and what it is."""

    model: Path
    vecnormalize: Path | None
    env_id: str | None  # None only where find_external was told not to require it
    algo: str  # "ppo" or "sac"


class _ZooLoader(yaml.SafeLoader):
    """SafeLoader that reads the zoo's ``!!python/object/apply:collections.OrderedDict`` as a dict."""


def _ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    (pairs,) = loader.construct_sequence(node, deep=True)
    return {key: value for key, value in pairs}


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict)


def read_zoo_yaml(path: Path) -> dict[str, Any]:
    """A zoo ``args.yml`` / ``config.yml`` as a dict (nothing in it is run)."""
    try:
        data = yaml.load(path.read_text(), Loader=_ZooLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise FlowError(f"{path} is not a YAML file the zoo writes: {exc}") from None
    if isinstance(data, list):  # config.yml: a list of [key, value] pairs
        data = {k: v for k, v in data}
    if not isinstance(data, dict):
        raise FlowError(f"{path} is not a mapping of settings")
    return data


def _registered_envs() -> list[str]:
    import gymnasium

    import training.envs  # noqa: F401  (registers the MinAtar environments where installed)

    return sorted(gymnasium.envs.registry, key=len, reverse=True)


def env_from_name(stem: str) -> str | None:
    """A registered environment id inside a file name (``ppo-CartPole-v1`` -> ``CartPole-v1``)."""
    for env_id in _registered_envs():
        if re.search(rf"(^|[^A-Za-z0-9]){re.escape(env_id)}($|[^A-Za-z0-9])", stem):
            return env_id
    return None


def zip_algo(path: Path) -> str:
    """``ppo`` or ``sac``, from the zip's ``data`` (JSON, read without unpickling)."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        raise FlowError(f"{path} is not a stable-baselines3 model (.zip with a data entry)") from None
    module = str((data.get("policy_class") or {}).get("__module__", ""))
    if ".sac." in module:
        return "sac"
    if module.endswith("common.policies") and "clip_range" in data and "n_epochs" in data:
        return "ppo"
    parts = module.split(".")
    if len(parts) > 2 and parts[0] == "stable_baselines3" and parts[1] != "common":
        raise FlowError(f"{path} is a {parts[1].upper()} model; a teacher must be PPO or SAC")
    raise FlowError(f"{path} is neither a PPO nor a SAC model; a teacher must be PPO or SAC")


def _beside(model: Path, env_id: str | None) -> Path | None:
    folders = [model.parent] + ([model.parent / env_id] if env_id else [])
    names = [*VECNORMALIZE_NAMES, f"{model.stem}_vecnormalize.pkl"]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def find_external(path: str | Path, env_id: str | None = None, *, require_env: bool = True) -> ExternalTeacher:
    """What ``path`` (an SB3 .zip or a zoo experiment folder) holds; ``env_id``: the user's ENV=.
    Without an environment id from either, refused unless ``require_env`` is false."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".zip":
            raise FlowError(f"teacher {path} is neither a run folder, a stable-baselines3 .zip nor a zoo log folder")
        found = env_from_name(path.stem)
        model = path
        algo = zip_algo(path)
    elif path.is_dir():
        model, found, algo = _zoo_experiment(path)
    else:
        raise FlowError(f"teacher {path} does not exist")
    if found is None and env_id is None and require_env:
        raise FlowError(f"the environment of teacher {path} is not in its name: give it with ENV=<id>")
    if found is not None and env_id is not None and found != env_id:
        raise FlowError(f"teacher {path} was trained on {found}, not on {env_id}")
    env = env_id or found
    return ExternalTeacher(model, _beside(model, env), env, algo)


def _zoo_experiment(folder: Path) -> tuple[Path, str | None, str]:
    """``(model zip, env id, algo)`` of an rl-baselines3-zoo experiment folder ``<algo>/<env>_<n>``."""
    args: dict[str, Any] = {}
    for candidate in sorted(folder.glob("*/args.yml")):
        args = read_zoo_yaml(candidate)
        break
    env_id = args.get("env") or (re.sub(r"_\d+$", "", folder.name) if re.search(r"_\d+$", folder.name) else None)
    zips = [folder / f"{env_id}.zip"] if env_id else []
    zips += [folder / "best_model.zip"] + sorted(folder.glob("*.zip"))
    model = next((z for z in zips if z.is_file()), None)
    if model is None:
        raise FlowError(f"teacher folder {folder} is not a run folder of this project nor an rl-baselines3-zoo "
                        f"experiment folder (<algo>/<env>_<n>/ with <env>.zip)")
    algo = zip_algo(model)
    named = str(args.get("algo", folder.parent.name)).lower()
    if named in ("ppo", "sac") and named != algo:
        raise FlowError(f"{folder} says {named.upper()} but its model {model.name} is {algo.upper()}")
    return model, env_id, algo


def load_vecnormalize(path: Path):
    """The ``VecNormalize`` pickled at ``path`` (a pickle: load only trusted teachers)."""
    from stable_baselines3.common.vec_env import VecNormalize

    try:
        with path.open("rb") as f:
            vec = pickle.load(f)  # noqa: S301 (SB3's own format; the docstring says: trusted files only)
    except Exception as exc:  # a damaged pickle raises many types
        raise FlowError(f"{path} is not a VecNormalize pickle ({type(exc).__name__})") from None
    if not isinstance(vec, VecNormalize):
        raise FlowError(f"{path} holds a {type(vec).__name__}, not stable-baselines3's VecNormalize")
    if isinstance(vec.obs_rms, dict):
        raise FlowError(f"{path} normalises a dict observation space; a teacher takes one array")
    return vec


def check_action_kind(path: Path, model_space, env_space, env_id: str) -> None:
    """Refuse, in one sentence, a teacher whose actions are of another kind (or size) than the environment's."""
    def kind(space) -> str:
        return "discrete" if hasattr(space, "n") else "continuous"

    if kind(model_space) != kind(env_space):
        raise FlowError(f"teacher {path} has {kind(model_space)} actions ({model_space}) but {env_id} takes "
                        f"{kind(env_space)} ones ({env_space})")

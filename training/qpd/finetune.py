"""RL fine-tuning after distillation: the quantized student improved by PPO with a KL term
towards the teacher.

Distillation stops where imitation stops: a low-bit student that cannot copy the teacher's
every output still has room to earn reward in its own way. This stage runs PPO (clipped
surrogate, GAE, as in CleanRL's ``ppo.py`` / ``ppo_continuous_action.py``) on the student at
its target precision, quantization-aware as in the last distillation stage, with
``kl_coef × KL(teacher ‖ student)`` on every minibatch's states, so the policy moves only where
reward pays for leaving the teacher.

Why not stable-baselines3's PPO: SB3 builds its own policy networks; the student is a Brevitas
module with its own input affine, quantizers and export contract, and the KL term needs the
teacher's targets on every minibatch. The loop is short and reads top to bottom.

The value function is a float MLP on the observation (after the student's fixed input affine),
trained from scratch: it is never deployed. The first ``critic_warmup`` rollouts train it alone,
so the first policy updates do not follow a random critic. Rewards are scaled by gymnasium's
``NormalizeReward`` (a running estimate of the discounted return's std), as SB3's
``VecNormalize`` does for PPO on MuJoCo.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass
from torch import nn
from tqdm.auto import tqdm

from training.envs import make_env
from training.qpd.loss import discrete_policy_kl, gaussian_kl
from training.students.student import QuantStudent

#: Episode seeds of the fine-tuning environments, far from every other seed range of a run.
FINETUNE_SEED_BASE = 50_000_000


@dataclass(config=ConfigDict(extra="forbid"))
class FinetuneConfig:
    """PPO fine-tuning of the distilled student (``finetune:`` in a distillation YAML).

    Attributes:
        steps: environment steps in all (over ``n_envs`` environments of the run).
        kl_coef: weight of KL(teacher ‖ student) on each minibatch's states, beside PPO's loss.
        lr: Adam's learning rate, annealed linearly to 0 (CleanRL's default 3e-4).
        rollout: steps per environment between updates.
        epochs / minibatch: passes over each rollout, and states per Adam update.
        clip: PPO's ratio clip; ``gamma`` / ``gae_lambda``: discount and GAE parameter.
        vf_coef: weight of the value loss; ``max_grad_norm``: gradient clipping.
        critic_warmup: rollouts at the start that train the value function alone.
    """

    steps: int = 200_000
    kl_coef: float = 1.0
    lr: float = 3e-4
    rollout: int = 256
    epochs: int = 10
    minibatch: int = 256
    clip: float = 0.2
    gamma: float = 0.99
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    critic_warmup: int = 2

    def __post_init__(self) -> None:
        from training.errors import FlowError

        for name in ("steps", "rollout", "epochs", "minibatch"):
            if getattr(self, name) <= 0:
                raise FlowError(f"finetune.{name} must be positive, got {getattr(self, name)}")
        if self.kl_coef < 0 or self.lr <= 0 or self.vf_coef < 0 or self.max_grad_norm <= 0 or self.critic_warmup < 0:
            raise FlowError("finetune: kl_coef, vf_coef and critic_warmup must be ≥ 0, lr and max_grad_norm > 0")
        if not 0 < self.clip < 1 or not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise FlowError("finetune: clip must be in (0, 1), gamma in (0, 1], gae_lambda in [0, 1]")


class Critic(nn.Module):
    """A float value MLP on the observation after the student's fixed input affine."""

    def __init__(self, student: QuantStudent, hidden: list[int]) -> None:
        super().__init__()
        spec = student.spec
        self.register_buffer("shift", torch.tensor(spec.obs_shift or [0.0] * spec.obs_dim, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(spec.obs_scale or [1.0] * spec.obs_dim, dtype=torch.float32))
        sizes = [spec.obs_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Value estimates of a batch of raw observations."""
        return self.net((obs.reshape(len(obs), -1) - self.shift) * self.scale).squeeze(-1)


def _distribution(student: QuantStudent, out: torch.Tensor) -> torch.distributions.Distribution:
    """The student's action distribution from its actor output ``out`` (logits or Gaussian means)."""
    if student.spec.discrete:
        return torch.distributions.Categorical(logits=out)
    return torch.distributions.Normal(out, student.log_std.exp().expand_as(out))


def _log_prob(dist: torch.distributions.Distribution, actions: torch.Tensor, discrete: bool) -> torch.Tensor:
    return dist.log_prob(actions) if discrete else dist.log_prob(actions).sum(-1)


def _teacher_kl(student: QuantStudent, out: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
    if student.spec.discrete:
        return discrete_policy_kl(out, targets["logits"], 1.0)
    return gaussian_kl(out, student.log_std, targets["mean"], targets["log_std"])


def finetune(student: QuantStudent, teacher: Any, env_id: str, cfg: FinetuneConfig, *, n_envs: int, seed: int,
             critic_hidden: list[int], action_low: np.ndarray | None = None, action_high: np.ndarray | None = None,
             quiet: bool = False) -> tuple[QuantStudent, list[dict[str, Any]]]:
    """Improve ``student`` in place by PPO with a KL term towards ``teacher``; return it and a
    curve of one row per rollout (mean episode return of finished episodes, losses, KL).

    ``teacher`` needs ``targets(obs)`` (a :class:`training.teacher.policy.TeacherPolicy`).
    """
    discrete = student.spec.discrete
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # Episode statistics inside the reward normalisation: info["episode"]["r"] is the environment's own return.
    envs = [gym.wrappers.NormalizeReward(gym.wrappers.RecordEpisodeStatistics(make_env(env_id)), gamma=cfg.gamma)
            for _ in range(n_envs)]
    next_seed = FINETUNE_SEED_BASE + 100_000 * seed
    obs_list = []
    for env in envs:
        o, _ = env.reset(seed=next_seed)
        next_seed += 1
        obs_list.append(np.asarray(o, dtype=np.float32))
    obs = np.stack(obs_list)
    critic = Critic(student, critic_hidden)
    params = [p for p in student.parameters() if p.requires_grad] + list(critic.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
    iterations = max(1, cfg.steps // (cfg.rollout * n_envs))
    curve: list[dict[str, Any]] = []
    bar = tqdm(total=iterations * cfg.rollout * n_envs, desc="RL fine-tuning", unit="step", disable=quiet or None,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    for it in range(iterations):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * (1.0 - it / iterations)
        # 1. Rollout with the current (quantized) student.
        b_obs = np.zeros((cfg.rollout, n_envs, *obs.shape[1:]), dtype=np.float32)
        b_act: list[np.ndarray] = []
        b_logp = np.zeros((cfg.rollout, n_envs), dtype=np.float32)
        b_rew = np.zeros((cfg.rollout, n_envs), dtype=np.float32)
        b_done = np.zeros((cfg.rollout, n_envs), dtype=np.float32)
        b_val = np.zeros((cfg.rollout, n_envs), dtype=np.float32)
        finished: list[float] = []
        student.eval()
        for t in range(cfg.rollout):
            b_obs[t] = obs
            with torch.no_grad():
                x = torch.as_tensor(obs)
                dist = _distribution(student, student.actor(x))
                action = dist.sample()
                b_logp[t] = _log_prob(dist, action, discrete).numpy()
                b_val[t] = critic(x).numpy()
            act = action.numpy()
            b_act.append(act)
            env_act = act if discrete else np.clip(act, action_low, action_high)
            for i, env in enumerate(envs):
                o, r, terminated, truncated, info = env.step(env_act[i])
                b_rew[t, i] = r
                if terminated or truncated:
                    b_done[t, i] = 1.0
                    finished.append(float(info["episode"]["r"]))
                    o, _ = env.reset(seed=next_seed)
                    next_seed += 1
                obs[i] = np.asarray(o, dtype=np.float32)
        bar.update(cfg.rollout * n_envs)
        # 2. GAE (an episode cut by the time limit is treated as ended, as CleanRL does).
        with torch.no_grad():
            next_val = critic(torch.as_tensor(obs)).numpy()
        adv = np.zeros_like(b_rew)
        last = np.zeros(n_envs, dtype=np.float32)
        for t in reversed(range(cfg.rollout)):
            nv = next_val if t == cfg.rollout - 1 else b_val[t + 1]
            nonterminal = 1.0 - b_done[t]
            delta = b_rew[t] + cfg.gamma * nv * nonterminal - b_val[t]
            last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
            adv[t] = last
        ret = adv + b_val
        # 3. Updates: PPO's clipped surrogate + value loss + KL towards the teacher.
        flat_obs = b_obs.reshape(-1, *obs.shape[1:])
        flat_act = torch.as_tensor(np.stack(b_act).reshape(cfg.rollout * n_envs, *b_act[0].shape[1:]))
        flat_logp, flat_adv = torch.as_tensor(b_logp.reshape(-1)), torch.as_tensor(adv.reshape(-1))
        flat_ret = torch.as_tensor(ret.reshape(-1))
        with torch.no_grad():
            targets = teacher.targets(flat_obs)
        policy_on = it >= cfg.critic_warmup
        student.train()
        n = len(flat_obs)
        stats = {"pg": 0.0, "value": 0.0, "kl_teacher": 0.0, "updates": 0}
        for _ in range(cfg.epochs):
            for idx in np.array_split(rng.permutation(n), max(1, n // cfg.minibatch)):
                x = torch.as_tensor(flat_obs[idx])
                v_loss = F.mse_loss(critic(x), flat_ret[idx])
                loss = cfg.vf_coef * v_loss
                if policy_on:
                    # One actor pass feeds both the surrogate and the KL term (a second pass would
                    # also step the activation quantizers' statistics twice per minibatch).
                    out = student.actor(x)
                    dist = _distribution(student, out)
                    ratio = (_log_prob(dist, flat_act[idx], discrete) - flat_logp[idx]).exp()
                    a = flat_adv[idx]
                    a = (a - a.mean()) / (a.std() + 1e-8)
                    pg = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                    kl = _teacher_kl(student, out, {k: v[idx] for k, v in targets.items()})
                    loss = loss + pg + cfg.kl_coef * kl
                    stats["pg"] += pg.item()
                    stats["kl_teacher"] += kl.item()
                stats["value"] += v_loss.item()
                stats["updates"] += 1
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
        k = max(1, stats.pop("updates"))
        curve.append({"iteration": it, "env_steps": (it + 1) * cfg.rollout * n_envs, "policy_updates": policy_on,
                      **{name: round(v / k, 6) for name, v in stats.items()},
                      "episodes": len(finished),
                      "episode_return": round(float(np.mean(finished)), 3) if finished else None})
        bar.set_postfix(kl=f"{stats['kl_teacher'] / k:.3f}",
                        ret="–" if not finished else f"{np.mean(finished):.1f}")
    bar.close()
    for env in envs:
        env.close()
    student.eval()
    if curve:
        curve[-1]["wall_s"] = round(time.perf_counter() - t0, 1)
    return student, curve

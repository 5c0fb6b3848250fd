"""The baselines QPD is measured against (docs/method.md), on the same seeds and budgets.

- ``ptq``: post-training quantization of the teacher's own actor at k bits (weights and the
  tanh activations), scales calibrated on teacher-visited states, no training;
- ``qat-ppo``: PPO from scratch (the teacher's hyperparameters and step budget) on the
  student architecture with its quantizers in the loop: quantization-aware RL;
- ``float-ptq``: distillation into a float student (the ``float`` method of
  :mod:`training.qpd.distill`), then post-training quantization of that student at k bits.

The other two rows of the table, ``direct`` (distillation at the target bits from the start)
and ``qpd``, are :func:`training.distill.distill` itself.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant.binary import SignedBinaryActPerTensorConst
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy

from training.qpd.distill import StudentPolicy
from training.envs import env_info
from training.evaluation import eval_seeds, evaluate
from training.qpd.replay import Collector
from training.students.frozen import FrozenStudent
from training.students.size import BIAS_BITS, SizeCount
from training.students.student import InputQuant, QuantStudent, StudentSpec, calibrate, student_act_bits, weight_quant
from training.teacher.policy import TeacherPolicy

PTQ_SEED_BASE = 40_000_000


class QuantizedTeacherActor(nn.Module):
    """The teacher's actor with Brevitas quantizers inserted, for post-training quantization.

    Input: a signed 8-bit quantizer on the (normalised) observation; a MinAtar teacher's binary
    frame as it is, into its convolution (quantized like a hidden layer, ReLU, then the
    activation quantizer) and its 128-unit layer. Each hidden layer: a
    QuantLinear at ``bits`` (per-channel scales; bipolar at 1 bit), the teacher's activation,
    then a signed ``bits``-bit quantizer on its output (its sign at 1 bit, as a BNN would).
    Output: a QuantLinear at ``bits`` with its bias.
    """

    def __init__(self, teacher: TeacherPolicy, bits: int, input_bits: int = 8) -> None:
        super().__init__()
        from training.teacher.features import MinAtarCNN

        actor = teacher.actor_layers()
        extractor, linears = actor.extractor, list(actor.linears)
        acts = [actor.activation] * (len(linears) - 1)
        layers: list[nn.Module] = []
        self.frame_shape = None
        if isinstance(extractor, MinAtarCNN):  # binary frames as they are; conv and its 128-unit layer quantized too
            conv = extractor.conv[0]
            q = QuantConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, bias=True,
                            weight_quant=weight_quant(bits, False), weight_bit_width=bits, return_quant_tensor=False)
            q.weight.data.copy_(conv.weight.data)
            q.bias.data.copy_(conv.bias.data)
            layers += [q, nn.ReLU(), self._act_quant(bits), nn.Flatten()]
            linears.insert(0, extractor.linear[0])
            acts.insert(0, nn.ReLU)
            self.frame_shape = tuple(teacher.model.observation_space.shape)
        else:
            layers.append(QuantIdentity(act_quant=InputQuant, bit_width=input_bits, return_quant_tensor=True))
        for i, lin in enumerate(linears):
            q = QuantLinear(lin.in_features, lin.out_features, bias=True, weight_quant=weight_quant(bits, False),
                            weight_bit_width=bits, return_quant_tensor=False)
            q.weight.data.copy_(lin.weight.data)
            q.bias.data.copy_(lin.bias.data)
            layers.append(q)
            if i < len(acts):
                layers += [acts[i](), self._act_quant(bits)]
        self.net = nn.Sequential(*layers)
        self.normalizer = teacher.normalizer
        self.discrete = teacher.discrete
        self.squash = actor.squash
        self.bits = bits

    @staticmethod
    def _act_quant(bits: int) -> nn.Module:
        if bits == 1:
            return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        return QuantIdentity(act_quant=InputQuant, bit_width=bits, return_quant_tensor=True)

    def size(self) -> SizeCount:
        """The quantized actor's size: every weight at ``bits``, biases at 32 bits."""
        layers = [m for m in self.net if isinstance(m, (QuantLinear, QuantConv2d))]
        weights, biases = sum(m.weight.numel() for m in layers), sum(m.bias.numel() for m in layers)
        return SizeCount(weights, biases, weights * self.bits, biases * BIAS_BITS)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalised observation (or binary frame) to logits or action mean."""
        if self.frame_shape is not None:
            obs = obs.reshape(len(obs), *self.frame_shape).permute(0, 3, 1, 2)
        out = self.net(obs)
        return out.value if hasattr(out, "value") else out

    def policy(self, low=None, high=None):
        """A batch policy on raw observations."""
        def act(obs: np.ndarray) -> np.ndarray:
            x = self.normalizer(obs) if self.normalizer is not None else obs
            with torch.no_grad():
                out = self(torch.as_tensor(x, dtype=torch.float32))
            if self.discrete:
                return out.argmax(-1).numpy()
            if self.squash:  # SAC: tanh, then the action box
                from host.loop.teacher_numpy import squash_to_box

                return squash_to_box(out.numpy(), low, high)
            return np.clip(out.numpy(), low, high) if low is not None else out.numpy()
        return act


def _teacher_states(teacher: TeacherPolicy, env_id: str, n: int, seed: int) -> np.ndarray:
    collector = Collector(env_id, 8, PTQ_SEED_BASE + 100_000 * seed)
    try:
        return collector.collect(teacher.sample, n)
    finally:
        collector.close()


def ptq_teacher(teacher: TeacherPolicy, env_id: str, bits: int, seed: int, episodes: int,
                calib_states: int = 20_000) -> dict[str, Any]:
    """Quantize the teacher's actor at ``bits`` after training and evaluate it."""
    t0 = time.perf_counter()
    info = env_info(env_id)
    states = _teacher_states(teacher, env_id, calib_states, seed)
    if teacher.normalizer is not None:
        states = teacher.normalizer(states)
    torch.manual_seed(seed)
    actor = calibrate(QuantizedTeacherActor(teacher, bits), states, seed=seed)
    result = evaluate(actor.policy(info.action_low, info.action_high), env_id, eval_seeds(episodes))
    size = actor.size()
    return {"size_bits": size.total_bits, "wall_s": time.perf_counter() - t0, **result.to_dict()}


def ptq_student(float_student: QuantStudent, teacher: TeacherPolicy, env_id: str, bits: int, seed: int,
                episodes: int, calib_states: int = 20_000) -> tuple[QuantStudent, dict[str, Any]]:
    """Quantize a float-distilled student at ``bits`` (weights and activations) and evaluate it."""
    from training.students.size import student_size
    from training.students.student import transfer_float_weights

    t0 = time.perf_counter()
    info = env_info(env_id)
    torch.manual_seed(seed)
    quant = QuantStudent(float_student.spec.with_bits(bits, student_act_bits(bits)))
    transfer_float_weights(float_student, quant)
    calibrate(quant, _teacher_states(teacher, env_id, calib_states, seed), seed=seed)
    result = evaluate(StudentPolicy(quant, info.action_low, info.action_high), env_id, eval_seeds(episodes))
    return quant, {"size_bits": student_size(quant.spec).total_bits, "wall_s": time.perf_counter() - t0, **result.to_dict()}


class QuantStudentPolicy(ActorCriticPolicy):
    """A stable-baselines3 actor-critic policy whose networks are a :class:`QuantStudent`.

    SB3's own MLP extractor and heads are not built; every method PPO calls goes through the
    student, so PPO trains the quantized network directly (quantization-aware RL).
    """

    def __init__(self, *args, student_spec: dict[str, Any], critic_arch: list[int] | None = None,
                 critic_activation: type[nn.Module] = nn.Tanh, **kwargs) -> None:
        self.student_spec = student_spec
        self.critic_arch = critic_arch
        self.critic_activation = critic_activation
        super().__init__(*args, **kwargs)

    #: Collect rollouts with the quantized weights and scales read once (see :meth:`rollout_mode`).
    fast_rollouts: bool = True
    #: A flat student's weights and scales during a rollout (built at its first call; see :meth:`rollout_mode`).
    _frozen: FrozenStudent | None = None
    _freeze: bool = False

    def _build(self, lr_schedule) -> None:
        from stable_baselines3.common.torch_layers import create_mlp

        self.student = QuantStudent(StudentSpec(**self.student_spec))
        # A separate float critic (never deployed) like the teacher's, or the student's own
        # critic head on its quantized trunk when critic_arch is None.
        self.critic = (nn.Sequential(*create_mlp(self.features_dim, 1, list(self.critic_arch), self.critic_activation))
                       if self.critic_arch is not None else None)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _distribution(self, out: torch.Tensor):
        if self.student.spec.discrete:
            return self.action_dist.proba_distribution(action_logits=out)
        return self.action_dist.proba_distribution(out, self.student.log_std)

    def _run(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs).float()
        if self._freeze and not self.student.training:
            if self._frozen is None:  # built here, in eval mode, not on entering rollout_mode (SB3 switches after)
                self._frozen = FrozenStudent(self.student)
            h = self._frozen.features(features)
            value = self.student.critic_out(h) if self.critic is None else self.critic(features)
            return self._frozen.actor(h), value.squeeze(-1)
        if self.critic is None:
            return self.student(features)
        return self.student.actor(features), self.critic(features).squeeze(-1)

    @contextlib.contextmanager
    def rollout_mode(self) -> Iterator[None]:
        """While PPO collects a rollout, read the student's quantized weights and scales once.

        The weights cannot change during a rollout, so their quantized values are cached at the
        first call instead of requantized at each: several times faster per call
        (``bench/bench_qat_rollout.py``; Brevitas's per-call quantizer Python was most of a QAT
        PPO run), and the same trained student bit for bit (tests/test_baselines.py). Left before
        PPO's update, which needs the quantizers' gradients. A frame student (binary input, trunk
        shared with the critic) runs under Brevitas's ``quant_inference_mode``; a flat one
        (input quantizer, biases) through :class:`training.students.frozen.FrozenStudent`, since a
        fresh flat student's first call under Brevitas's mode can recurse without end in 0.13.
        """
        from brevitas.export.inference import quant_inference_mode

        spec = self.student.spec
        frames = spec.binary_input and self.critic is None
        self._freeze = self.fast_rollouts and FrozenStudent.supports(spec)
        mode = quant_inference_mode(self.student, cache_quant_weight=True, enabled=self.fast_rollouts and frames)
        try:
            with mode:
                yield
        finally:
            self._freeze, self._frozen = False, None
            for handle in mode.hook_list:  # a rollout of no step leaves Brevitas's first-call hook in place
                handle.remove()

    def forward(self, obs, deterministic: bool = False):
        """Actions, values and log-probabilities, as SB3 expects."""
        out, value = self._run(obs)
        dist = self._distribution(out)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, value.unsqueeze(-1), dist.log_prob(actions)

    def evaluate_actions(self, obs, actions):
        """Values, log-probabilities and entropy of given actions."""
        out, value = self._run(obs)
        dist = self._distribution(out)
        return value.unsqueeze(-1), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs):
        """The action distribution."""
        return self._distribution(self._run(obs)[0])

    def predict_values(self, obs):
        """The value estimates."""
        return self._run(obs)[1].unsqueeze(-1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "student_spec": self.student_spec,
                "critic_arch": self.critic_arch, "critic_activation": self.critic_activation}


QAT_SETTINGS_FILE = "qat_settings.json"


class QATPPO(PPO):
    """stable-baselines3's PPO, collecting its rollouts in :meth:`QuantStudentPolicy.rollout_mode`."""

    def collect_rollouts(self, *args, **kwargs) -> bool:
        with self.policy.rollout_mode():
            return super().collect_rollouts(*args, **kwargs)


def policy_student_spec(spec) -> dict[str, Any]:
    """A :class:`StudentSpec` as :class:`QuantStudentPolicy`'s ``student_spec`` (plain lists, as SB3 saves it)."""
    return spec.__dict__ | {"hidden": list(spec.hidden), "conv": list(spec.conv), "obs_shape": list(spec.obs_shape)}


def _qat_checkpoint(run_dir: Path | None, venv, settings: dict[str, Any]):
    """A QAT PPO run's checkpoint in ``run_dir`` if it was left by a run of the same ``settings``
    (see :func:`training.teacher.train.load_checkpoint`), else None; records ``settings`` there."""
    if run_dir is None:
        return None
    from training import atomic
    from training.teacher.train import CHECKPOINT_DIR, load_checkpoint

    saved = run_dir / QAT_SETTINGS_FILE
    if saved.exists() and json.loads(saved.read_text()) != settings:
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    atomic.write_json(saved, settings)
    resumed = load_checkpoint(run_dir, venv, lambda path: QATPPO.load(path, device="cpu"))
    if resumed is not None:
        print(f"resuming QAT PPO in {run_dir} at {resumed[0].num_timesteps:,} of {settings['steps']:,} steps")
    return resumed


def qat_ppo(env_id: str, bits: int, hidden: list[int], seed: int, episodes: int,
            steps: int | None = None, separate_critic: bool = True,
            conv: list[int] | None = None, run_dir: Path | None = None) -> tuple[QuantStudent, dict[str, Any]]:
    """PPO from scratch on the quantized student architecture, with the teacher's hyperparameters and budget.

    The actor is the quantized student; the critic is a separate float network of the teacher's
    critic architecture, as in the teacher (only the actor is deployed). Sharing the student's
    tiny quantized trunk with the value instead makes the baseline fail for a reason that is not
    quantization: LunarLander-v3's unnormalised returns then drive the shared features (8 bits,
    seed 0, 20 episodes: -140.0 shared against -88.9 separate after 300k steps; shared after the
    full 1M steps: -159.8 over 100 episodes). Differences from the teacher's recipe,
    because the actor is the deployed network: no observation normalisation wrapper (the
    student's fixed input affine, set from random-policy states, does that job in the network),
    and no gSDE (the student has a state-independent std). ``conv``: the pixel student's
    convolutions (default: the environment's default student, :func:`training.qpd.config.default_architecture`);
    its binary frames go in as they are, like the distilled students', and the critic is the
    student's own head on its convolutional trunk (the teacher's critic is a head on its CNN
    features; a separate critic on raw pixels would be a linear function of the frame).
    ``run_dir``: where training checkpoints (as a teacher's run does, every 5 minutes) and resumes
    from; a checkpoint left by a run of other settings is discarded. Resuming continues from the
    saved model, optimiser and step count, not from the RNG state: a resumed run is not bit for
    bit the uninterrupted one.
    """
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from training.teacher.config import load_hyperparams, normalize_settings, ppo_kwargs
    from training.qpd.distill import input_affine
    from training.students.size import student_size

    t0 = time.perf_counter()
    info = env_info(env_id)
    hp = load_hyperparams(env_id)
    total = int(steps if steps is not None else float(hp["n_timesteps"]))
    random_states = Collector(env_id, 8, PTQ_SEED_BASE + 50_000 + seed)
    space = random_states.envs[0].action_space
    space.seed(seed)
    states = random_states.collect(lambda obs: np.stack([space.sample() for _ in obs]), 5000)
    random_states.close()
    from training.qpd.config import QPDConfig, default_architecture
    from training.qpd.distill import student_spec_for

    pixels = info.pixels and info.binary_obs
    shift, scale = ([], []) if pixels else input_affine(states.reshape(len(states), -1))
    cfg = QPDConfig(env_id=env_id, hidden=list(hidden), weight_bits=bits,
                    conv=list(conv) if conv is not None else default_architecture(env_id)[0])
    spec = student_spec_for(info, cfg, shift, scale)
    kwargs = ppo_kwargs(env_id, hp)
    kwargs.pop("use_sde", None)
    kwargs.pop("sde_sample_freq", None)
    teacher_arch = kwargs["policy_kwargs"].get("net_arch") or {}
    kwargs["policy_kwargs"] = {"student_spec": policy_student_spec(spec),
                               "critic_arch": None if not separate_critic or pixels else
                               list(teacher_arch.get("vf", [64, 64])) if isinstance(teacher_arch, dict) else list(teacher_arch),
                               "critic_activation": kwargs["policy_kwargs"]["activation_fn"]}
    venv = make_vec_env(env_id, n_envs=int(hp.get("n_envs", 1)), seed=seed, vec_env_cls=DummyVecEnv)
    if normalize_settings(hp)["norm_reward"]:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=float(hp.get("gamma", 0.99)))
    torch.manual_seed(seed)
    resumed = _qat_checkpoint(run_dir, venv, {"env_id": env_id, "bits": bits, "hidden": list(hidden), "seed": seed,
                                              "steps": total, "separate_critic": separate_critic,
                                              "conv": list(cfg.conv)})
    if resumed is None:
        model, curve, wall_offset = QATPPO(QuantStudentPolicy, venv, seed=seed, device="cpu", verbose=0, **kwargs), [], 0.0
    else:
        model, venv, curve, wall_offset = resumed
    if run_dir is not None:
        from training.teacher.train import TeacherCallback

        callback = TeacherCallback(run_dir, total, curve, wall_offset, checkpoint_every_steps=max(total // 20, 1),
                                   checkpoint_every_s=300.0, desc=f"QAT PPO w{bits}")
    else:
        callback = None
    model.learn(total - model.num_timesteps, callback=callback, reset_num_timesteps=False)
    if callback is not None:
        from training.teacher.train import save_checkpoint

        save_checkpoint(run_dir, model, callback.curve, callback.wall())  # a crash in evaluation resumes here
    student = model.policy.student.eval()
    result = evaluate(StudentPolicy(student, info.action_low, info.action_high), env_id, eval_seeds(episodes))
    venv.close()
    # wall_offset: the training seconds of the runs this one resumed
    return student, {"size_bits": student_size(spec).total_bits, "wall_s": wall_offset + time.perf_counter() - t0,
                     "train_timesteps": total, **result.to_dict()}

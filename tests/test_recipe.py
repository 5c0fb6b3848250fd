"""The distillation recipe for hard tasks: per-layer precision, the per-action output affine, a
separate critic, float warm start, one learning-rate schedule, clipped targets, the teacher's
log-std, and how each is named, validated and kept apart from older records."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.errors import FlowError
from training.qpd.config import RECIPE_DEFAULTS, load_qpd_config, same_computation
from training.students.student import QuantStudent, StudentSpec, calibrate


def test_recipe_settings_at_their_old_values_are_the_old_computation():
    """A record made before the recipe settings existed still matches the defaults (not rerun)."""
    cfg = load_qpd_config(env_id="HalfCheetah-v5", weight_bits=3)
    old = {k: v for k, v in cfg.effective_dict().items() if k not in RECIPE_DEFAULTS}
    assert same_computation(old, cfg)
    changed = load_qpd_config(env_id="HalfCheetah-v5", weight_bits=3, clip_targets=True)
    assert not same_computation(old, changed)


def test_names_say_which_layers_differ():
    cfg = load_qpd_config(env_id="HalfCheetah-v5", weight_bits=3, first_bits=8, last_bits=8, output_affine=True)
    assert cfg.run_name() == "qpd-2x32-w3a3-f8l8-oa-s0"
    assert load_qpd_config(weight_bits=2, last_bits=4).run_name() == "qpd-2x32-w2a2-l4-s0"
    assert load_qpd_config(weight_bits=2, first_bits=2).run_name() == "qpd-2x32-w2a2-s0"


def test_float_warm_start_comes_first_for_every_quantized_method():
    qpd = load_qpd_config(weight_bits=3, float_warm_start=True)
    assert qpd.stages()[0] == (None, None) and qpd.stages()[-1] == (3, 3) and len(qpd.stages()) == 5
    direct = load_qpd_config(weight_bits=3, method="direct", float_warm_start=True)
    assert direct.stages() == [(None, None), (3, 3)] and sum(direct.stage_updates()) == direct.updates


@pytest.mark.parametrize("kwargs, match", [
    (dict(weight_bits=4, first_bits=3), "must not be below weight_bits"),
    (dict(last_bits=9), "from 1 to 8"),
    (dict(critic="float"), "'critic'"),
    (dict(lr_schedule="linear"), "'lr_schedule'"),
    (dict(log_std_init=-2), "'log_std_init'"),
    (dict(critic_hidden=[0]), "critic_hidden"),
    (dict(updates="8000.5"), "'updates'"),
])
def test_bad_recipe_settings_are_one_sentence(kwargs, match):
    with pytest.raises(FlowError, match=match):
        load_qpd_config(**kwargs)


def test_yaml_numbers_in_any_notation(tmp_path):
    """PyYAML reads ``1e-3`` as a string (YAML 1.1); the config takes it as the number it is."""
    path = tmp_path / "cfg.yaml"
    path.write_text("lr: 1e-3\nupdates: 8000.0\nloss:\n  value_coef: 5e-1\n")
    cfg = load_qpd_config(path)
    assert cfg.lr == 1e-3 and cfg.updates == 8000 and isinstance(cfg.updates, int) and cfg.loss.value_coef == 0.5


def _continuous_spec(**kwargs) -> StudentSpec:
    return StudentSpec(17, 6, False, (32, 32), 3, 3, 8, [0.0] * 17, [0.3] * 17, **kwargs)


def test_first_and_last_layers_keep_their_own_bits_and_follow_a_higher_stage():
    spec = _continuous_spec(first_bits=8, last_bits=6)
    student = QuantStudent(spec)
    bits = [int(m.quant_weight().bit_width) for m in (student.trunk[0], student.trunk[2], student.actor_out)]
    assert bits == [8, 3, 6] and spec.label() == "2x32-w3a3-f8l6"
    assert spec.with_bits(8, 8).label() == "2x32-w8a8"  # above them, the schedule wins
    assert spec.with_bits(4, 4).layer_weight_bits("output") == 6


def test_output_affine_is_per_action_and_continuous_only():
    student = calibrate(QuantStudent(_continuous_spec(output_affine=True)),
                        np.random.default_rng(0).normal(size=(2000, 17)).astype(np.float32))
    assert student.actor_out.bias is not None and student.actor_out.quant_weight().scale.numel() == 6
    with pytest.raises(FlowError, match="continuous"):
        StudentSpec(4, 2, True, (8, 8), 2, 2, 8, output_affine=True)


def test_a_separate_critic_leaves_the_actor_alone():
    student = QuantStudent(_continuous_spec(critic_hidden=(16,)))
    student.train()
    _, value = student(torch.randn(64, 17))
    value.pow(2).mean().backward()
    assert all(p.grad is None or not p.grad.any() for p in student.trunk.parameters())
    assert any(p.grad is not None and p.grad.any() for p in student.critic.parameters())
    shared = QuantStudent(_continuous_spec())
    shared.train()
    shared(torch.randn(64, 17))[1].pow(2).mean().backward()
    assert any(p.grad is not None and p.grad.any() for p in shared.trunk.parameters())


def test_grid_hardware_keys_name_the_per_layer_options():
    """A grid run with first/last-layer bits or the output affine is costed as that architecture,
    not as the plain one of the same widths and bits (its deployed bits differ)."""
    from flow.experiments.hardware import arch_key, layer_options, row_cost

    layers = layer_options({"first_bits": 8, "last_bits": 8, "output_affine": False, "lr": 1e-3})
    assert layers == {"first_bits": 8, "last_bits": 8}
    assert arch_key((32, 32), 3, 3, 8, (), **layers, output_affine=True) == "2x32-w3a3-f8l8-oa"
    assert arch_key((32, 32), 8, 8, 8, (), **layers) == "2x32-w8a8"  # all layers at 8 bits: the plain student
    hardware = {"architectures": {"2x32-w3a3": {"deployed_bits": 1}, "2x32-w3a3-f8l8": {"deployed_bits": 2}}}
    assert row_cost(hardware, "qpd", (32, 32), 3, 8, (), **layers)["deployed_bits"] == 2


def test_the_frontier_keeps_by_the_paired_test_where_it_has_one():
    from flow.experiments.frontier import smallest_keeping_teacher

    rows = [{"method": "qpd", "size_bits": 100, "seeds": [0, 1, 2], "seeds_keeping_teacher": 3,
             "seeds_keeping_teacher_paired": 2},
            {"method": "qpd", "size_bits": 200, "seeds": [0, 1, 2], "seeds_keeping_teacher": 3,
             "seeds_keeping_teacher_paired": 3},
            {"method": "qpd", "size_bits": 50, "seeds": [0, 1, 2], "seeds_keeping_teacher": 3}]
    assert smallest_keeping_teacher(rows[:2], "qpd")["size_bits"] == 200
    assert smallest_keeping_teacher(rows, "qpd")["size_bits"] == 50  # no paired test: the one-std rule

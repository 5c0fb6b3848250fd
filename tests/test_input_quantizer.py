"""The host's input quantizer equals Brevitas's ``IntQuant.to_int`` bit for bit, edge values included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from host.errors import HostError
from host.datapath.quantizer import InputQuantizer
from training.students.student import QuantStudent, StudentSpec, calibrate


@pytest.fixture(scope="module")
def student() -> QuantStudent:
    torch.manual_seed(0)
    spec = StudentSpec(obs_dim=4, n_out=2, discrete=True, hidden=(8, 8), weight_bits=2, act_bits=2,
                       obs_shift=[0.1, 0.0, -0.2, 0.0], obs_scale=[1.0, 0.5, 2.0, 1.7])
    return calibrate(QuantStudent(spec), np.random.default_rng(0).normal(size=(2000, 4)).astype(np.float32))


def _brevitas(student, obs):
    return student.input_codes(torch.as_tensor(obs)).numpy().astype(np.int64)


def test_random_states(student):
    obs = (np.random.default_rng(1).normal(size=(20_000, 4)) * 3).astype(np.float32)
    np.testing.assert_array_equal(InputQuantizer.from_transform(student.input_quantizer())(obs), _brevitas(student, obs))


def test_rounding_midpoints_clip_bounds_and_negative_zero(student):
    spec = student.input_quantizer()
    q = InputQuantizer.from_transform(spec)
    shift, scale, s = (np.float32(spec["shift"][0]), np.float32(spec["scale"][0]), np.float32(spec["quant_scale"]))
    k = np.arange(-140, 140, dtype=np.float32)
    values = []
    for target in np.concatenate([k + np.float32(0.5), k]):  # midpoints and integers, beyond the clip bounds too
        x = np.float32(target * s / scale + shift)
        values += [np.nextafter(x, np.float32(-np.inf)), x, np.nextafter(x, np.float32(np.inf))]
    col = np.array(values + [-0.0, 0.0, shift, -shift], dtype=np.float32)
    obs = np.zeros((len(col), 4), dtype=np.float32)
    obs[:, 0] = col
    y = ((obs[:, 0] - shift) * scale) / s
    assert (y == np.rint(y) + np.float32(0.5)).sum() > 50  # exact midpoints are among them
    ours, theirs = q(obs), _brevitas(student, obs)
    np.testing.assert_array_equal(ours, theirs)
    assert ours[:, 0].min() == spec["min_int"] and ours[:, 0].max() == spec["max_int"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_refused(student, bad):
    with pytest.raises(HostError):
        InputQuantizer.from_transform(student.input_quantizer())(np.full((1, 4), bad, dtype=np.float32))

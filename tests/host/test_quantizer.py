"""The host's input quantizer: float32 arithmetic, half-to-even rounding, clipping, refusals.

Its agreement with Brevitas itself is tested on the workstation (tests/test_input_quantizer.py);
these run on the board-like environment too.
"""

from __future__ import annotations

import numpy as np
import pytest

from host.errors import HostError
from host.datapath.quantizer import InputQuantizer

Q = {"shift": [0.0, 1.0], "scale": [1.0, 0.5], "quant_scale": 0.25, "zero_point": 0.0, "min_int": -128, "max_int": 127}


def test_rounding_midpoints_go_to_even_and_the_range_is_clipped():
    q = InputQuantizer.from_transform(Q)
    # channel 0: x / 0.25 is exactly 0.5, 1.5, 2.5, -0.5, -1.5 -> 0, 2, 2, -0, -2 (half to even)
    obs = np.array([[0.125, 1.0], [0.375, 1.0], [0.625, 1.0], [-0.125, 1.0], [-0.375, 1.0]], dtype=np.float32)
    assert q(obs)[:, 0].tolist() == [0, 2, 2, 0, -2]
    big = np.array([[1e6, -1e6], [31.75, 1.0], [-32.0, 1.0], [-32.125, 1.0]], dtype=np.float32)
    assert q(big).tolist() == [[127, -128], [127, 0], [-128, 0], [-128, 0]]


def test_negative_zero_is_zero():
    q = InputQuantizer.from_transform(Q)
    assert q(np.array([[-0.0, 1.0]], dtype=np.float32)).tolist() == [[0, 0]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_observations_are_refused(bad):
    with pytest.raises(HostError, match="NaN or infinity"):
        InputQuantizer.from_transform(Q)(np.array([[0.0, bad]], dtype=np.float32))


def test_a_malformed_transform_is_one_sentence():
    with pytest.raises(HostError, match="malformed"):
        InputQuantizer.from_transform({"shift": [0.0]})

"""Size counting: hand-counted students, the SB3 teacher, and the 0.5 % target."""

from __future__ import annotations

from training.students.size import SizeCount, student_size, teacher_size
from training.students.student import StudentSpec
from training.teacher.policy import TeacherPolicy


def float_mlp(sizes: list[int]) -> SizeCount:
    """A float32 MLP actor counted by hand: every layer's weights and biases (the output's too)."""
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    biases = sum(sizes[1:])
    return SizeCount(weights, biases, weights * 32, biases * 32)


def test_student_size_by_hand():
    size = student_size(StudentSpec(obs_dim=4, n_out=2, discrete=True, hidden=(32, 32), weight_bits=2, act_bits=2))
    assert size.n_weights == 4 * 32 + 32 * 32 + 32 * 2
    assert size.n_biases == 32 + 32  # no output bias
    assert size.total_bits == 1216 * 2 + 64 * 32


def test_float_student_counts_32_bit_weights():
    size = student_size(StudentSpec(obs_dim=4, n_out=2, discrete=True, hidden=(8,), weight_bits=None, act_bits=None))
    assert size.weight_bits == (4 * 8 + 8 * 2) * 32


def test_teacher_size_is_its_actor_and_matches_the_mlp_count(tiny_teacher):
    teacher = TeacherPolicy.load(tiny_teacher)  # 32x32 nets
    assert teacher_size(teacher) == float_mlp([4, 32, 32, 2])


def test_default_student_is_under_half_a_percent_of_a_2x256_teacher():
    teacher = float_mlp([4, 256, 256, 2])
    assert teacher.n_weights == 67072 and teacher.n_biases == 514
    student = student_size(StudentSpec(obs_dim=4, n_out=2, discrete=True))
    assert student.total_bits / teacher.total_bits < 0.005

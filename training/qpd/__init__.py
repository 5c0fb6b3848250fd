"""QPD, Quantization-aware Policy Distillation: the distillation loop with its precision
schedule (``distill``), the actor-critic distillation loss (``loss``), its settings (``config``),
the replay of teacher/student states (``replay``), and the baselines QPD is compared with
(``baselines``: PTQ, float distillation then PTQ, QAT PPO)."""

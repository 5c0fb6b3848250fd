"""Training stage: PPO teachers (``teacher/``), Brevitas students (``students/``) and QPD
distillation with its baselines (``qpd/``); beside them the helpers every part shares
(environments, evaluation, run folders, errors, atomic writes, plots) and the stage's command
line (``python -m training teacher|eval|distill|envs``). Imports host/, never hw_build/ or flow/."""

"""Training side of the flow: PPO teachers, Brevitas students, QPD distillation and evaluation."""

"""PPO teachers: hyperparameters per environment (``hyperparams/ppo.yml``, ``config``),
training with resume (``train``), and the trained teacher as a policy (``policy``)."""

"""Reinforcement-learning core (Qt-free): functional policies, batched rollouts, returns, TRPO, and the base
of the RL learners (:mod:`workbench.rl.learner`)."""

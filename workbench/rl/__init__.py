"""Reinforcement-learning core (Qt-free): functional policies, batched rollouts, returns, TRPO."""

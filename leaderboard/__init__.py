"""Leaderboard tables built from the results store; installed as ``fewshot.leaderboard``."""

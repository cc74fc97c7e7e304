"""Learners, one file each; installed as ``fewshot.baselines``."""

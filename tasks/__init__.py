"""Datasets and their protocols, one module each; installed as ``fewshot.tasks``."""

"""Evaluation protocols: how a benchmark cell is scored and reported."""

"""Running a configuration: training with budgets and exact resume, checkpoints, caches, evaluation, downloads."""

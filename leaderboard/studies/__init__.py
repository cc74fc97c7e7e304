"""Studies beside the leaderboard, installed as ``fewshot.leaderboard.studies``.

Each one uses the suite's public interfaces only (benchmarks, backbones, samplers; the learned optimisers' own
helpers for the study about them):

* ``transfer``: Yosinski et al.'s which-layers-transfer experiment (``fewshot study transfer``);
* ``freeze``: frozen, fine-tuned and from-scratch networks against labelled target images (``fewshot study freeze``);
* ``inner_steps``: the learned optimisers' query accuracy after each inner step, beside SGD and Adam
  (``python -m fewshot.leaderboard.studies.inner_steps``).
"""

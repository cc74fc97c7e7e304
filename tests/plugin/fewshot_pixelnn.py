"""A learner in one file, installed as a separate package: cosine nearest neighbour on raw pixels.

The classic untrained baseline (used, for instance, as a reference in Lake et
al. 2015's one-shot runs). It registers through the ``fewshot.learners``
entry-point group exactly like the built-in learners.
"""

import torch
import torch.nn.functional as F

from fewshot.core.learner import Learner


class PixelNearestNeighbour(Learner):
    family = "metric"
    paper = "nearest neighbour on pixels (untrained reference)"
    hparams = {"temperature": 10.0}
    default_budget = {"*": "0steps"}

    def embed(self, x):
        return F.normalize(x.flatten(1), dim=1)

    @torch.no_grad()
    def predict_embedded(self, episode):
        similarity = episode.query_x @ episode.support_x.T
        best = similarity.view(len(episode.query_x), episode.ways, -1).max(dim=2).values
        return self.hp["temperature"] * best

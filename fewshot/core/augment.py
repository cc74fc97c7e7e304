"""Training augmentation of natural images, as Chen et al. 2019 ("A Closer Look at Few-shot Classification",
ICLR; wyharveychen/CloserLookFewShot, ``data/datamgr.py``) train every method with it: a random resized crop
back to the image's size (area 8-100% of the image, aspect ratio 3/4 to 4/3, torchvision's
``RandomResizedCrop`` defaults), colour jitter of brightness, contrast and saturation by factors uniform in
[0.6, 1.4] (their ``ImageJitter`` with 0.4 each), and a horizontal flip half the time. Never at test time.

The whole batch is transformed at once: the crop and the flip are one affine resampling per image
(``grid_sample``, bilinear), the jitter a few blends. Every random number comes from ``rng``, which the
training sampler derives from (seed, step), so batch t is the same however training is interrupted.

Deviations: the crop is drawn once (torchvision retries up to ten times when a drawn box does not fit, then
falls back to a centre crop; here the drawn box is clipped to the image instead); the jitter is applied in the
fixed order brightness, contrast, saturation (PIL's ``ImageEnhance`` in Chen et al.'s code, random order).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
JITTER = 0.4
# ITU-R 601-2 luma, as PIL's convert("L") that ImageEnhance's contrast and colour blend against
LUMA = (0.299, 0.587, 0.114)


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``x`` float images ``[n, 3, H, W]`` in [0, 1], cropped, flipped and jittered; same shape, in [0, 1]."""
    n = x.shape[0]
    area = rng.uniform(*SCALE, n)
    log_ratio = rng.uniform(math.log(RATIO[0]), math.log(RATIO[1]), n)
    aspect = np.exp(log_ratio)
    # box width and height as fractions of the image's, clipped to fit
    width = np.minimum(np.sqrt(area * aspect), 1.0)
    height = np.minimum(np.sqrt(area / aspect), 1.0)
    left = rng.uniform(0, 1, n) * (1 - width)
    top = rng.uniform(0, 1, n) * (1 - height)
    flip = rng.uniform(0, 1, n) < 0.5
    factors = rng.uniform(1 - JITTER, 1 + JITTER, (3, n))
    # affine_grid maps output coordinates in [-1, 1] to input ones: scale to the box, move to its centre
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0] = width * np.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = 2 * (left + width / 2) - 1
    theta[:, 1, 1] = height
    theta[:, 1, 2] = 2 * (top + height / 2) - 1
    grid = F.affine_grid(torch.from_numpy(theta).to(x), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    brightness, contrast, saturation = (torch.from_numpy(f).to(x).view(n, 1, 1, 1) for f in factors)
    x = (x * brightness).clamp_(0, 1)
    luma = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    grey = (x * luma).sum(1, keepdim=True)
    x = (grey.mean((2, 3), keepdim=True) + contrast * (x - grey.mean((2, 3), keepdim=True))).clamp_(0, 1)
    grey = (x * luma).sum(1, keepdim=True)
    return (grey + saturation * (x - grey)).clamp_(0, 1)

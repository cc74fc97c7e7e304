import torch

from baselines_helpers import zero_shot_accuracy
from fewshot.baselines.eszsl import eszsl_solution


def test_the_closed_form_is_the_least_squares_minimiser_of_the_regularised_objective():
    generator = torch.Generator().manual_seed(0)
    m, d, z, a, gamma, lam = 12, 4, 3, 5, 0.3, 0.7
    x = torch.randn(m, d, generator=generator, dtype=torch.float64)  # features, one row per image
    labels = torch.arange(m) % z
    side = torch.rand(z, a, generator=generator, dtype=torch.float64)
    y = 2 * torch.nn.functional.one_hot(labels, z).double() - 1
    # ||X^T V S - Y||^2 + gamma ||V S||^2 + lam ||X^T V||^2 + gamma lam ||V||^2 as one stacked least-squares
    # problem in vec(V) (column-major): vec(A V B) = (B^T kron A) vec(V)
    # with X = x^T and S = side^T
    eye_d, eye_a = torch.eye(d, dtype=torch.float64), torch.eye(a, dtype=torch.float64)
    system = torch.cat(
        [
            torch.kron(side, x),
            gamma**0.5 * torch.kron(side, eye_d),
            lam**0.5 * torch.kron(eye_a, x),
            (gamma * lam) ** 0.5 * torch.eye(d * a, dtype=torch.float64),
        ]
    )
    target = torch.cat([y.T.reshape(-1), torch.zeros(z * d + a * m + d * a, dtype=torch.float64)])
    direct = torch.linalg.lstsq(system, target).solution.reshape(a, d).T
    assert torch.allclose(eszsl_solution(x, labels, side, gamma, lam), direct, atol=1e-9)


def test_eszsl_beats_chance_on_glyph_zero_shot_episodes(glyphs_zsl):
    for side in ("attributes", "text"):
        assert zero_shot_accuracy(glyphs_zsl, "eszsl", side, gamma=1.0, lam=1.0) > 0.4  # chance is 0.2

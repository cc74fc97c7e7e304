import torch

from baselines_helpers import random_episode, short_training
from fewshot.baselines.inner_loop import adapt, detached_parameters
from fewshot.baselines.learned_optimizer import SGD, optimise
from fewshot.baselines.metalstm import MetaLSTM
from fewshot.core.learner import TaskSpec


def _learner(**hp):
    torch.manual_seed(0)
    return MetaLSTM(
        TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10), {**MetaLSTM.hparams, "inner_steps": 3, **hp}
    )


def test_the_gates_and_the_initial_parameters_receive_gradients_and_are_learned():
    learner = _learner()
    before = {k: v.detach().clone() for k, v in learner.named_parameters()}
    learner.train_step([random_episode()])
    cell = learner.meta_learner.cell
    for name, p in [
        ("forget/input weights", cell.weight_h),
        ("gate biases", cell.bias),
        ("first layer", learner.meta_learner.lstm.weight),
        ("initial head", learner.net.head.weight),
    ]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    changed = [k for k, v in learner.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert "meta_learner.cell.bias" in changed and "net.head.weight" in changed and "net.body.0.weight" in changed


def test_the_gates_start_near_gradient_descent_with_a_small_step():
    bias = _learner().meta_learner.cell.bias.detach().squeeze(1)
    forget, input_ = torch.sigmoid(bias).tolist()
    assert forget > 0.98 and input_ < 0.02


def test_a_fixed_learning_rate_in_place_of_the_lstm_is_plain_sgd():
    learner = _learner(update_rule="sgd", baseline_lr=0.2)
    episode = random_episode()
    with_rule = learner.predict(episode)
    fast = adapt(
        learner.net.forward_with,
        detached_parameters(learner.net),
        episode.support_x,
        episode.support_y,
        3,
        0.2,
        second_order=False,
    )
    assert torch.allclose(with_rule, learner.net.forward_with(fast, episode.query_x).detach(), atol=1e-5)


def test_saturated_gates_make_the_meta_learner_s_cell_update_a_gradient_step():
    learner = _learner()
    cell = learner.meta_learner.cell
    with torch.no_grad():  # f = 1, i = 0.2, whatever the LSTM's state
        for p in (cell.weight_h, cell.weight_theta, cell.weight_previous):
            p.zero_()
        cell.bias.copy_(torch.tensor([[100.0], [torch.logit(torch.tensor(0.2)).item()]]))
    episode = random_episode(1)
    loss_at = learner.loss_at(episode.support_x, episode.support_y)
    learned = optimise(loss_at, learner.initial_parameters().detach(), 3, learner.meta_learner)
    plain = optimise(loss_at, learner.initial_parameters().detach(), 3, SGD(0.2))
    assert torch.allclose(learned[-1], plain[-1], atol=1e-5)


def test_predict_changes_nothing_and_training_ignores_evaluation_only_rules():
    learner = _learner(update_rule="adam")
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    logits = learner.predict(random_episode())
    assert logits.shape == (6, 3) and not logits.requires_grad
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())
    assert learner.train_step([random_episode()])["loss"] > 0
    assert learner.meta_learner.cell.bias.grad is not None, "training meta-learns the LSTM whatever update_rule says"


def test_beats_chance_clearly_on_omniglot(omniglot):
    trained, untrained = short_training(omniglot["lake"], "metalstm", 40, episodes=60)
    assert trained > 0.55, trained  # chance is 0.2
    assert trained > untrained + 0.05, (trained, untrained)

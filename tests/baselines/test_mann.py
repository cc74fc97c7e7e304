import json

import pytest
import torch
import torch.nn.functional as F

from baselines_helpers import short_training
from conftest import run_cli
from fewshot.baselines.mann import MANN, MemoryState, least_used_weights, lrua_step
from fewshot.core.learner import TaskSpec


def _state(memory, usage, read_weights, heads):
    batch, _slots, _ = memory.shape
    return MemoryState(
        memory,
        usage,
        read_weights,
        least_used_weights(usage, heads),
        torch.zeros(batch, 0),
        (torch.zeros(batch, 1), torch.zeros(batch, 1)),
    )


def test_least_used_weights_mark_the_n_smallest_usages():
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.05, 0.3]])
    assert least_used_weights(usage, 2).tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]


def test_lrua_write_and_read_by_hand():
    """Two slots, one head: every quantity of the paper's equations, computed by hand."""
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    usage = torch.tensor([[0.9, 0.2, 0.5]])  # slot 1 least used; after zeroing, written through w_lu
    previous_read = torch.tensor([[[0.7, 0.2, 0.1]]])
    state = _state(memory, usage, previous_read, heads=1)
    assert state.least_used.tolist() == [[0.0, 1.0, 0.0]]
    key = torch.tensor([[[2.0, 0.0]]])
    gate = torch.tensor([[0.0]])  # sigmoid = 0.5
    new_memory, read_weights, reads, new_usage, least_used = lrua_step(state, key, gate, gamma=0.95)
    write = 0.5 * torch.tensor([0.7, 0.2, 0.1]) + 0.5 * torch.tensor([0.0, 1.0, 0.0])  # [0.35, 0.6, 0.05]
    expected_memory = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]) + write[:, None] * torch.tensor([2.0, 0.0])
    assert torch.allclose(new_memory[0], expected_memory)
    cosines = F.cosine_similarity(torch.tensor([2.0, 0.0]).expand(3, 2), expected_memory, dim=1)
    expected_read = torch.softmax(cosines, 0)
    assert torch.allclose(read_weights[0, 0], expected_read, atol=1e-6)
    assert torch.allclose(reads[0, 0], expected_read @ expected_memory, atol=1e-6)
    assert torch.allclose(new_usage[0], 0.95 * usage[0] + expected_read + write, atol=1e-6)
    assert least_used.tolist() == [[0.0, 0.0, 1.0]]  # usages 1.566, 1.151, 0.803


@pytest.mark.parametrize("read_after_write", [True, False])
def test_query_steps_do_not_see_each_other(read_after_write):
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
    hp = {**MANN.hparams, "slots": 8, "slot_size": 4, "controller": 16, "read_after_write": read_after_write}
    learner = MANN(task, hp).eval()
    support = torch.rand(1, 3, 1, 28, 28)
    labels = torch.tensor([[2, 0, 1]])
    queries = torch.rand(4, 1, 28, 28)
    _, together = learner.run(support, labels, queries)
    _, alone = learner.run(support, labels, queries[2:3])
    assert torch.allclose(together[2], alone[0], atol=1e-6)


def test_a_step_never_sees_its_own_label_or_later_ones():
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 4, 0, 10)
    learner = MANN(task, {**MANN.hparams, "slots": 8, "slot_size": 4, "controller": 16}).eval()
    x = torch.rand(2, 12, 1, 28, 28)
    y = torch.randint(0, 3, (2, 12))
    changed = y.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 3
    before, after = learner.predict_sequences(x, y), learner.predict_sequences(x, changed)
    assert torch.allclose(before[:, :7], after[:, :7], atol=1e-6)  # step 6 sees labels 0..5 only
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_reading_the_previous_memory_by_hand():
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    state = _state(memory, torch.tensor([[0.3, 0.1]]), torch.tensor([[[1.0, 0.0]]]), heads=1)
    key = torch.tensor([[[0.0, 3.0]]])
    strengths = torch.tensor([[2.0]])
    _, read_weights, reads, _, _ = lrua_step(state, key, torch.tensor([[0.0]]), 0.95, strengths, read_after_write=False)
    expected = torch.softmax(2.0 * torch.tensor([0.0, 1.0]), 0)  # cosines with M_{t-1}, times the strength
    assert torch.allclose(read_weights[0, 0], expected, atol=1e-6)
    assert torch.allclose(reads[0, 0], expected @ memory[0], atol=1e-6)


def test_beats_chance_clearly_on_omniglot(omniglot):
    # 3-way episodes leave the initial plateau within a few hundred steps (5-way ones take about a thousand)
    trained, untrained = short_training(omniglot["lake"], "mann", 400, ways=3)
    assert trained > 0.45, trained  # chance is 1/3
    assert trained > untrained + 0.1


def test_per_instance_runs_are_recorded_and_shown(tmp_path, data_root):
    results = str(tmp_path / "r.sqlite")
    done = run_cli(
        "eval",
        "--learner",
        "mann",
        "--dataset",
        "omniglot",
        "--protocol",
        "lake",
        "--per-instance",
        "--ways",
        "3",
        "--instances",
        "4",
        "--episodes",
        "20",
        "--budget",
        "5steps",
        "--quiet",
        "--json",
        "--results",
        results,
    )
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip().splitlines()[-1])
    by_presentation = [line[f"presentation_{k}"] for k in range(1, 5)]
    assert line["protocol_kind"] == "per-instance" and "presentation_5" not in line
    assert line["mean"] == pytest.approx(sum(by_presentation) / 4, abs=1e-3)  # 3 classes x 4, each once
    board = run_cli("leaderboard", "--results", results)
    assert "## Per-instance protocol" in board.stdout and "| omniglot | lake | 3 | 4 | mann |" in board.stdout
    assert "| omniglot | lake | 3 | 4 | mann |" not in board.stdout.split("## Per-instance")[0]

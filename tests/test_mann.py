import torch
import torch.nn.functional as F

from fewshot.baselines.mann import MANN, MemoryState, least_used_weights, lrua_step
from fewshot.learner import TaskSpec


def _state(memory, usage, read_weights, heads):
    batch, slots, _ = memory.shape
    return MemoryState(memory, usage, read_weights, least_used_weights(usage, heads), torch.zeros(batch, 0),
                       (torch.zeros(batch, 1), torch.zeros(batch, 1)))


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


def test_query_steps_do_not_see_each_other():
    task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
    learner = MANN(task, {**MANN.hparams, "slots": 8, "slot_size": 4, "controller": 16}).eval()
    support = torch.rand(1, 3, 1, 28, 28)
    labels = torch.tensor([[2, 0, 1]])
    queries = torch.rand(4, 1, 28, 28)
    _, together = learner.run(support, labels, queries)
    _, alone = learner.run(support, labels, queries[2:3])
    assert torch.allclose(together[2], alone[0], atol=1e-6)

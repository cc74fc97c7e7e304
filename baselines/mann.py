"""Memory-augmented neural network (MANN): Santoro, Bartunov, Botvinick, Wierstra and
Lillicrap 2016, "Meta-Learning with Memory-Augmented Neural Networks", ICML.

An LSTM controller reads from and writes to an external memory of ``slots`` x
``slot_size`` (paper: 128 x 40) through ``heads`` read heads (paper: 4) with
least-recently-used access (LRUA). At step t the input is the flattened image
(20x20 in the paper) with the one-hot label of step t-1, and the previous read
vectors; the network predicts the label of step t, so it must bind each image
to the label it sees one step later. Per head, from the controller output h_t:

* key k_t and write gate alpha_t;
* write weights  w^w_t = sigmoid(alpha_t) w^r_{t-1} + (1 - sigmoid(alpha_t)) w^lu_{t-1};
* before writing, the least-used slot (argmin of w^u_{t-1}) is zeroed;
  then M_t(i) = M_{t-1}(i) + sum over heads of w^w_t(i) k_t;
* read weights  w^r_t(i) = softmax_i(cosine(k_t, M_t(i))),  r_t = sum_i w^r_t(i) M_t(i);
* usage  w^u_t = gamma w^u_{t-1} + sum over heads of (w^r_t + w^w_t);
* least-used weights  w^lu_t(i) = 1 where w^u_t(i) is among the n smallest
  (n = the number of read heads), else 0.

The output is softmax(W_o [h_t, r_t]). Labels are shuffled per episode (the
sampler draws the classes in random order, so a label never means the same
class twice) and the support set is presented in a random order seeded by the
episode.

Episodic protocol (every learner's leaderboard protocol): the support set is
fed as a labelled sequence; each query is then classified from the memory state
after the support set in one step whose label input is the last support
label, and no write is kept between queries (all queries step from the same
state, in one batch). Training uses the same episodes: the loss is the
cross-entropy of every step's prediction, support steps (Santoro's online
task) and query steps alike.

Deviations: images are 28x28 resized to ``image_size`` (20, as in the paper);
Adam instead of RMSProp (``--hp optimizer=rmsprop`` for the paper's, at lr
1e-4); gradients clipped to norm ``clip`` (10) for stability; episodes of
``train_shots`` instances per class (10, like Santoro's 50-step episodes of 5
classes) plus ``train_queries`` query steps; the memory starts at 1e-6 and the
read weights on slot 0, as in the public re-implementations. The paper's
5-character string labels for 15-way tasks are not built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.episode import Episode
from fewshot.learner import EpisodeBatches, Learner, TaskSpec


@dataclass
class MemoryState:
    memory: torch.Tensor  # [B, slots, size]
    usage: torch.Tensor  # [B, slots]
    read_weights: torch.Tensor  # [B, heads, slots]
    least_used: torch.Tensor  # [B, slots]
    reads: torch.Tensor  # [B, heads * size]
    hidden: tuple[torch.Tensor, torch.Tensor]

    def expand(self, copies: int) -> "MemoryState":
        """The same state repeated ``copies`` times per batch row (queries stepping from one state)."""
        rep = lambda t: t.repeat_interleave(copies, dim=0)  # noqa: E731
        return MemoryState(rep(self.memory), rep(self.usage), rep(self.read_weights), rep(self.least_used),
                           rep(self.reads), (rep(self.hidden[0]), rep(self.hidden[1])))


def least_used_weights(usage: torch.Tensor, n: int) -> torch.Tensor:
    """1 at the ``n`` slots of smallest usage, 0 elsewhere (ties broken by slot order)."""
    smallest = torch.topk(-usage, n, dim=1, sorted=False).indices
    return torch.zeros_like(usage).scatter_(1, smallest, 1.0)


def lrua_step(state: MemoryState, keys: torch.Tensor, gates: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LRUA write and read. ``keys`` [B, H, size], ``gates`` [B, H] (pre-sigmoid).

    Returns (memory, read weights, reads [B, H, size], usage, least-used weights).
    """
    heads = keys.shape[1]
    sigma = torch.sigmoid(gates).unsqueeze(2)
    write_weights = sigma * state.read_weights + (1 - sigma) * state.least_used.unsqueeze(1)  # [B, H, N]
    emptied = F.one_hot(state.usage.argmin(dim=1), state.usage.shape[1]).to(state.memory.dtype)  # [B, N]
    memory = state.memory * (1 - emptied).unsqueeze(2) + write_weights.transpose(1, 2) @ keys
    similarity = F.normalize(keys, dim=2, eps=1e-8) @ F.normalize(memory, dim=2, eps=1e-8).transpose(1, 2)
    read_weights = torch.softmax(similarity, dim=2)
    reads = read_weights @ memory
    usage = gamma * state.usage + read_weights.sum(1) + write_weights.sum(1)
    return memory, read_weights, reads, usage, least_used_weights(usage, heads)


class MANN(Learner):
    family = "memory"
    paper = "Santoro et al. 2016, Meta-Learning with Memory-Augmented Neural Networks"
    hparams = {
        "controller": 200,
        "slots": 128,
        "slot_size": 40,
        "heads": 4,
        "gamma": 0.95,
        "image_size": 20,
        "lr": 1e-3,
        "optimizer": "adam",
        "clip": 10.0,
        "meta_batch": 16,
        "train_shots": 10,
        "train_queries": 2,
    }
    hparam_choices = {"optimizer": ("adam", "rmsprop")}
    trains_on = ("ways",)
    default_budget = {"glyphs": "1500steps", "omniglot": "10000steps", "*": "2000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.ways = task.ways
        pixels = task.image_shape[0] * hp["image_size"] ** 2
        self.read_size = hp["heads"] * hp["slot_size"]
        self.lstm = nn.LSTMCell(pixels + task.ways + self.read_size, hp["controller"])
        self.keys = nn.Linear(hp["controller"], hp["heads"] * hp["slot_size"])
        self.gates = nn.Linear(hp["controller"], hp["heads"])
        self.output = nn.Linear(hp["controller"] + self.read_size, task.ways)
        optimizer = torch.optim.RMSprop if hp["optimizer"] == "rmsprop" else torch.optim.Adam
        self.optimizer = optimizer(self.parameters(), lr=hp["lr"])

    # -- the recurrence ---------------------------------------------------------------------
    def initial_state(self, batch: int, device) -> MemoryState:
        hp = self.hp
        read_weights = torch.zeros(batch, hp["heads"], hp["slots"], device=device)
        read_weights[:, :, 0] = 1.0
        usage = torch.zeros(batch, hp["slots"], device=device)
        return MemoryState(
            memory=torch.full((batch, hp["slots"], hp["slot_size"]), 1e-6, device=device),
            usage=usage, read_weights=read_weights, least_used=least_used_weights(usage, hp["heads"]),
            reads=torch.zeros(batch, self.read_size, device=device),
            hidden=(torch.zeros(batch, hp["controller"], device=device), torch.zeros(batch, hp["controller"], device=device)),
        )

    def step(self, state: MemoryState, pixels: torch.Tensor, previous_label: torch.Tensor) -> tuple[torch.Tensor, MemoryState]:
        h, c = self.lstm(torch.cat([pixels, previous_label, state.reads], dim=1), state.hidden)
        batch = h.shape[0]
        keys = self.keys(h).view(batch, self.hp["heads"], self.hp["slot_size"])
        memory, read_weights, reads, usage, least_used = lrua_step(state, keys, self.gates(h), self.hp["gamma"])
        reads = reads.reshape(batch, -1)
        logits = self.output(torch.cat([h, reads], dim=1))
        return logits, MemoryState(memory, usage, read_weights, least_used, reads, (h, c))

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        size = self.hp["image_size"]
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="area")
        return x.flatten(1)

    def run(self, support_x: torch.Tensor, support_y: torch.Tensor,
            query_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Episodes in a batch: support ``[B, T, ...]`` as a labelled sequence, then every query from the final state.

        ``query_x`` is ``[B * Q, ...]``, each episode's queries together, in batch order.
        Returns (support-step logits [B, T, N], query logits [B * Q, N]).
        """
        batch, steps = support_y.shape
        state = self.initial_state(batch, support_y.device)
        pixels = self.pixels(support_x.flatten(0, 1)).view(batch, steps, -1)
        labels = F.one_hot(support_y, self.ways).to(pixels.dtype)
        previous = torch.zeros(batch, self.ways, device=pixels.device)
        outputs = []
        for t in range(steps):
            logits, state = self.step(state, pixels[:, t], previous)
            outputs.append(logits)
            previous = labels[:, t]
        queries = query_x.shape[0] // batch
        query_state = state.expand(queries)
        query_logits, _ = self.step(query_state, self.pixels(query_x), previous.repeat_interleave(queries, dim=0))
        return torch.stack(outputs, dim=1), query_logits

    @staticmethod
    def sequence_order(episode: Episode, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(episode.support_y.numel(), generator=generator).to(episode.support_y.device)

    # -- the learner interface ------------------------------------------------------------------
    def train_batches(self) -> EpisodeBatches:
        return EpisodeBatches(self.task.ways, self.hp["train_shots"], self.hp["train_queries"], self.hp["meta_batch"])

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        support_x, support_y, query_x, query_y = self._stack(batch)
        self.optimizer.zero_grad()
        support_logits, query_logits = self.run(support_x, support_y, query_x)
        logits = torch.cat([support_logits.flatten(0, 1), query_logits])
        labels = torch.cat([support_y.flatten(), query_y])
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.hp["clip"])
        self.optimizer.step()
        return {"loss": loss.item(), "acc": (query_logits.argmax(1) == query_y).float().mean().item()}

    def _stack(self, batch: list[Episode]):
        orders = [self.sequence_order(e, torch.Generator().manual_seed(e.seed)) for e in batch]
        support_x = torch.stack([e.support_x[o] for e, o in zip(batch, orders)])
        support_y = torch.stack([e.support_y[o] for e, o in zip(batch, orders)])
        return support_x, support_y, torch.cat([e.query_x for e in batch]), torch.cat([e.query_y for e in batch])

    @torch.no_grad()
    def predict(self, episode: Episode) -> torch.Tensor:
        support_x, support_y, query_x, _ = self._stack([episode])
        _, query_logits = self.run(support_x, support_y, query_x)
        return query_logits

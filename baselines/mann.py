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
fed as a labelled sequence, then one closing step (a blank image with the last
support label, so the last image is bound like the others); each query is then
classified from the memory state after that step, with no label input, and no
write is kept between queries (all queries step from the same state, in one
batch). Training uses episodes of the same shape (the cell's ways and shots,
``train_queries`` queries per class); the loss is the cross-entropy of every
step's prediction, support steps (Santoro's online task) and query steps alike.

Per-instance protocol (``fewshot eval --per-instance``, see
``fewshot.protocols.per_instance``): the paper's own test, N classes x K instances as one
sequence scored by presentation; its training uses sequences of the same
shape with the loss on every step, as in the paper.

Deviations, each a hyperparameter where the paper's choice can be restored:

* the cosines are multiplied by a key strength beta_t = 1 + softplus(W h_t)
  per head before the softmax (``key_strength``), as in the Neural Turing
  Machine's content addressing that MANN builds on; with the bare cosine
  (in [-1, 1]) 128 slots can never be read sharply;
* reads use the memory before this step's write, M_{t-1} (``read_after_write
  = false``; true is the paper's M_t): with M_t every key finds its own fresh
  copy with cosine 1. It also lets all queries of an episode read one memory
  without copying it;
* Adam at 3e-3 instead of RMSProp (``--hp optimizer=rmsprop``); gradients
  clipped to norm ``clip`` (10); in the episodic protocol, training episodes
  shaped like the test's (meta-batches of 16) rather than Santoro's 50-step
  sequences;
* images are resized from 28x28 to ``image_size`` (20, the paper's); the
  memory starts at 1e-6 and the read weights on slot 0, as in the public
  re-implementations. The paper's 5-character string labels for 15-way
  tasks are not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.episode import Episode
from fewshot.core.learner import EpisodeBatches, Learner, TaskSpec


@dataclass
class MemoryState:
    memory: torch.Tensor  # [B, slots, size]
    usage: torch.Tensor  # [B, slots]
    read_weights: torch.Tensor  # [B, heads, slots]
    least_used: torch.Tensor  # [B, slots]
    reads: torch.Tensor  # [B, heads * size]
    hidden: tuple[torch.Tensor, torch.Tensor]

    def expand(self, copies: int) -> MemoryState:
        """The same state repeated ``copies`` times per batch row (queries stepping from one state)."""
        rep = lambda t: t.repeat_interleave(copies, dim=0)  # noqa: E731
        return MemoryState(
            rep(self.memory),
            rep(self.usage),
            rep(self.read_weights),
            rep(self.least_used),
            rep(self.reads),
            (rep(self.hidden[0]), rep(self.hidden[1])),
        )


def least_used_weights(usage: torch.Tensor, n: int) -> torch.Tensor:
    """1 at the ``n`` slots of smallest usage, 0 elsewhere (ties broken by slot order)."""
    smallest = torch.topk(-usage, n, dim=1, sorted=False).indices
    return torch.zeros_like(usage).scatter_(1, smallest, 1.0)


def content_read(
    memory: torch.Tensor, keys: torch.Tensor, strengths: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read weights softmax_i(strength * cosine(k, M(i))) and reads: ``memory`` [B, N, size], ``keys`` [B, H, size]."""
    similarity = F.normalize(keys, dim=2, eps=1e-8) @ F.normalize(memory, dim=2, eps=1e-8).transpose(1, 2)
    if strengths is not None:
        similarity = similarity * strengths.unsqueeze(2)
    read_weights = torch.softmax(similarity, dim=2)
    return read_weights, read_weights @ memory


def lrua_step(
    state: MemoryState,
    keys: torch.Tensor,
    gates: torch.Tensor,
    gamma: float,
    strengths: torch.Tensor | None = None,
    read_after_write: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LRUA write and read. ``keys`` [B, H, size], ``gates`` [B, H] (pre-sigmoid),
    ``strengths`` [B, H] (multiplies the cosines before the softmax; None: 1, as in the paper).
    ``read_after_write``: read M_t, as the paper's equations do; False reads M_{t-1}.

    Returns (memory, read weights, reads [B, H, size], usage, least-used weights).
    """
    heads = keys.shape[1]
    sigma = torch.sigmoid(gates).unsqueeze(2)
    write_weights = sigma * state.read_weights + (1 - sigma) * state.least_used.unsqueeze(1)  # [B, H, N]
    emptied = F.one_hot(state.usage.argmin(dim=1), state.usage.shape[1]).to(state.memory.dtype)  # [B, N]
    memory = state.memory * (1 - emptied).unsqueeze(2) + write_weights.transpose(1, 2) @ keys
    read_weights, reads = content_read(memory if read_after_write else state.memory, keys, strengths)
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
        "lr": 3e-3,
        "optimizer": "adam",
        "clip": 10.0,
        "meta_batch": 16,
        "train_shots": 0,  # support images per class in episodic training (0: the cell's shots)
        "train_queries": 5,
        "key_strength": True,
        "read_after_write": False,
    }
    hparam_choices = {"optimizer": ("adam", "rmsprop")}
    hparam_ranges = {
        "controller": "[1, 4096]",
        "slots": "[1, 100000]",
        "slot_size": "[1, 4096]",
        "heads": "[1, 64]",
        "gamma": "[0, 1]",  # the decay of the usage weights
        "image_size": "[1, 512]",
        "lr": "(0, 10]",
        "clip": "(0, 1e6]",
        "meta_batch": "[1, 10000]",
        "train_shots": "[0, 10000]",  # 0: the cell's
        "train_queries": "[0, 10000]",
    }
    trains_on = ("ways", "shots")
    protocol_note = "support fed as a labelled sequence; queries read the memory after it, none kept"
    default_budget = {"glyphs": "4000steps", "omniglot": "10000steps", "*": "4000steps"}

    def __init__(self, task: TaskSpec, hp):
        super().__init__(task, hp)
        self.ways = task.ways
        pixels = task.image_shape[0] * hp["image_size"] ** 2
        self.read_size = hp["heads"] * hp["slot_size"]
        self.pixel_count = pixels
        self.lstm = nn.LSTMCell(pixels + task.ways + self.read_size, hp["controller"])
        self.keys = nn.Linear(hp["controller"], hp["heads"] * hp["slot_size"])
        self.gates = nn.Linear(hp["controller"], hp["heads"])
        self.strengths = nn.Linear(hp["controller"], hp["heads"]) if hp["key_strength"] else None
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
            usage=usage,
            read_weights=read_weights,
            least_used=least_used_weights(usage, hp["heads"]),
            reads=torch.zeros(batch, self.read_size, device=device),
            hidden=(
                torch.zeros(batch, hp["controller"], device=device),
                torch.zeros(batch, hp["controller"], device=device),
            ),
        )

    def _keys(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        keys = self.keys(h).view(h.shape[0], self.hp["heads"], self.hp["slot_size"])
        return keys, (1 + F.softplus(self.strengths(h)) if self.strengths is not None else None)

    def step(
        self, state: MemoryState, pixels: torch.Tensor, previous_label: torch.Tensor
    ) -> tuple[torch.Tensor, MemoryState]:
        h, c = self.lstm(torch.cat([pixels, previous_label, state.reads], dim=1), state.hidden)
        batch = h.shape[0]
        keys, strengths = self._keys(h)
        memory, read_weights, reads, usage, least_used = lrua_step(
            state, keys, self.gates(h), self.hp["gamma"], strengths, self.hp["read_after_write"]
        )
        reads = reads.reshape(batch, -1)
        logits = self.output(torch.cat([h, reads], dim=1))
        return logits, MemoryState(memory, usage, read_weights, least_used, reads, (h, c))

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        size = self.hp["image_size"]
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="area")
        return x.flatten(1)

    def run_sequence(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, MemoryState]:
        """Labelled sequences ``x`` [B, T, ...], ``y`` [B, T]: the logits of every step [B, T, N] and the final state.

        Step t sees image t with the label of step t-1 (zeros at t = 0).
        """
        batch, steps = y.shape
        state = self.initial_state(batch, y.device)
        pixels = self.pixels(x.flatten(0, 1)).view(batch, steps, -1)
        previous_labels = F.pad(F.one_hot(y, self.ways).to(pixels.dtype), (0, 0, 1, 0))
        outputs = []
        for t in range(steps):
            logits, state = self.step(state, pixels[:, t], previous_labels[:, t])
            outputs.append(logits)
        return torch.stack(outputs, dim=1), state

    def run(
        self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The episodic protocol for a batch of episodes: support ``[B, T, ...]`` as a labelled sequence, a
        closing step (blank image, the last support label), then every query from that state with no label.

        ``query_x`` is ``[B * Q, ...]``, each episode's queries together, in batch order.
        Returns (support-step logits [B, T, N], query logits [B * Q, N]).
        """
        support_logits, state = self.run_sequence(support_x, support_y)
        batch = support_y.shape[0]
        last_label = F.one_hot(support_y[:, -1], self.ways).to(support_logits.dtype)
        blank = torch.zeros(batch, self.pixel_count, device=support_y.device)
        _, state = self.step(state, blank, last_label)
        return support_logits, self.query_step(state, self.pixels(query_x), query_x.shape[0] // batch)

    def query_step(self, state: MemoryState, pixels: torch.Tensor, queries: int) -> torch.Tensor:
        """Logits of ``queries`` steps per batch row, each from ``state``, none seeing another's write."""
        no_label = torch.zeros(pixels.shape[0], self.ways, device=pixels.device)
        if self.hp["read_after_write"]:  # the paper's order: each query writes, then reads its own memory copy
            return self.step(state.expand(queries), pixels, no_label)[0]
        hidden = (state.hidden[0].repeat_interleave(queries, 0), state.hidden[1].repeat_interleave(queries, 0))
        h, _ = self.lstm(torch.cat([pixels, no_label, state.reads.repeat_interleave(queries, 0)], dim=1), hidden)
        keys, strengths = self._keys(h)
        batch, heads = state.memory.shape[0], keys.shape[1]
        # every query of an episode reads the same memory, M_{t-1}: one batched read, no copies
        _, reads = content_read(
            state.memory,
            keys.reshape(batch, queries * heads, -1),
            None if strengths is None else strengths.reshape(batch, queries * heads),
        )
        return self.output(torch.cat([h, reads.reshape(batch * queries, -1)], dim=1))

    @staticmethod
    def sequence_order(episode: Episode, generator: torch.Generator) -> torch.Tensor:
        return torch.randperm(episode.support_y.numel(), generator=generator).to(episode.support_y.device)

    # -- the learner interface ------------------------------------------------------------------
    def train_batches(self) -> EpisodeBatches:
        if self.task.queries == 0:  # the per-instance protocol: Santoro's sequences, as they are scored
            return EpisodeBatches(self.task.ways, self.task.shots, 0, self.hp["meta_batch"])
        shots = self.hp["train_shots"] or self.task.shots
        return EpisodeBatches(self.task.ways, shots, self.hp["train_queries"], self.hp["meta_batch"])

    def train_step(self, batch: list[Episode]) -> dict[str, float]:
        support_x, support_y, query_x, query_y = self._stack(batch)
        self.optimizer.zero_grad()
        if query_y.numel():
            support_logits, query_logits = self.run(support_x, support_y, query_x)
        else:  # sequences only (the per-instance protocol's training)
            support_logits, query_logits = self.run_sequence(support_x, support_y)[0], None
        logits = (
            support_logits.flatten(0, 1)
            if query_logits is None
            else torch.cat([support_logits.flatten(0, 1), query_logits])
        )
        labels = support_y.flatten() if query_logits is None else torch.cat([support_y.flatten(), query_y])
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), self.hp["clip"])
        self.optimizer.step()
        scored, truth = (
            (support_logits.flatten(0, 1), support_y.flatten()) if query_logits is None else (query_logits, query_y)
        )
        return {"loss": loss.item(), "acc": (scored.argmax(1) == truth).float().mean().item()}

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

    @torch.no_grad()
    def predict_sequences(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.run_sequence(x, y)[0]

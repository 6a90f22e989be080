"""Label scoring over a token trie: each label's probability under label-constrained decoding.

The labels' token sequences (each ending with end-of-sequence) form a trie. From the prompt's next-token
logits, the probability mass is shared among the first tokens the labels can start with (a softmax over
those tokens only); a label alone on its branch gets that branch's mass, and a branch that several labels
still share is evaluated one token further and shared again. A label's probability is the product of its
shares along its path, and the probabilities of all labels sum to one.

:class:`LabelWalk` is one prompt's walk, driven from outside: the llama.cpp arm evaluates each branch as it
comes (one prompt at a time), the batched decoder evaluates one branch of every unfinished prompt per step
(:mod:`kit.arms.llama_batch`). The arithmetic is the same for both, in float64.

>>> walk = LabelWalk([[5, 9], [5, 7], [3, 9]])        # two labels start with token 5
>>> first = np.zeros(10); first[3], first[5] = np.log(0.25), np.log(0.75)
>>> walk.start(first)                                  # the third label is alone on its branch: 0.25
>>> branch = walk.next(); branch.token, branch.depth, branch.members
(5, 1, [0, 1])
>>> walk.feed(np.zeros(10))                            # tokens 9 and 7 equally likely after 5
>>> walk.pending, [round(float(p), 3) for p in walk.probs]
(False, [0.375, 0.375, 0.25])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Branch:
    """A point of the trie still to evaluate: ``token`` (at depth ``depth - 1`` of the labels) is shared by the
    labels ``members``, which carry ``mass``; its logits choose among their tokens at ``depth``."""

    token: int
    depth: int
    members: list[int]
    mass: float


class LabelWalk:
    """One prompt's walk over the trie of ``labels`` (token sequences). Call :meth:`start` with the prompt's
    next-token logits, then, while :attr:`pending`, :meth:`next` for the branch to evaluate and :meth:`feed`
    with the logits after its token (the prompt, then the branch's path, then its token). :attr:`probs` holds
    each label's probability once nothing is pending."""

    def __init__(self, labels: Sequence[Sequence[int]]) -> None:
        self.labels = labels
        self.probs = np.zeros(len(labels))
        self._stack: list[Branch] = []
        self._current: Branch | None = None

    @property
    def pending(self) -> bool:
        """Whether a branch is still to evaluate."""
        return bool(self._stack)

    def start(self, logits: np.ndarray) -> None:
        """Share all the mass by the labels' first tokens, from the prompt's next-token ``logits``."""
        self._spread(logits, depth=0, members=list(range(len(self.labels))), mass=1.0)

    def next(self) -> Branch:
        """The next branch to evaluate (depth first: the KV cache then holds the branch's path)."""
        self._current = self._stack.pop()
        return self._current

    def feed(self, logits: np.ndarray) -> None:
        """Share the mass of the branch :meth:`next` gave, from the logits after its token."""
        branch = self._current
        if branch is None:
            raise RuntimeError("feed() without a branch from next()")
        self._current = None
        self._spread(logits, depth=branch.depth, members=branch.members, mass=branch.mass)

    def _spread(self, logits: np.ndarray, *, depth: int, members: list[int], mass: float) -> None:
        groups: dict[int, list[int]] = {}
        for m in members:
            groups.setdefault(int(self.labels[m][depth]), []).append(m)
        nexts = np.array(list(groups))
        values = np.asarray(logits[nexts], dtype=np.float64)
        z = values - values.max()
        share = np.exp(z) / np.exp(z).sum()
        for (token, group), p in zip(groups.items(), share):
            if len(group) == 1:
                self.probs[group[0]] = mass * p
            else:
                self._stack.append(Branch(token=token, depth=depth + 1, members=group, mass=mass * p))

"""Batched decoding for the llama.cpp arm: several prompts answered together in one llama.cpp context.

Each prompt of a group is one sequence of a llama.cpp context with one KV stream per sequence (each
holds ``n_ctx / batch`` cells). The prompts' shared prefix (system message and k-shot turns) is
evaluated once, in sequence 0, and kept there from group to group; its KV cells are copied to the other
sequences' streams (``llama_memory_seq_cp``). Then one ``llama_decode`` evaluates the items' own prompt
tokens together, and each step of generation (or of the label walk) decodes one token of every
unfinished sequence together: the weights are read once per step for all sequences instead of once per
sequence, which is what makes batching pay where decoding is bound by memory bandwidth (a GPU, a large
model). Separate streams keep each token's attention to its own sequence's cells.

Generation at temperature 0 takes the most probable token the item's JSON-schema grammar allows (the
model's first choice is checked against the grammar, and only when the grammar forbids it is the grammar
applied to the whole vocabulary — the same token as applying it first); above temperature 0 each sequence
has the sampler chain llama-cpp-python's ``create_completion`` builds. So answers are those of
one-at-a-time decoding up to llama.cpp's batch invariance: logits computed in a larger batch can differ
in the last bits, which can flip a near tie. Label scoring walks the label trie of every item at once
(:class:`~kit.arms.label_walk.LabelWalk`, the same walk as one at a time), one branching token per item
per step.

Per item: ``latency_s`` is the time from the start of the group until that item's answer was complete;
``ttft_s`` the time until its first answer token was chosen (label scoring: until its prompt's
next-token probabilities were computed).

>>> decoder = BatchDecoder(llm, n_seq=8, n_ctx=8192, n_batch=512)          # doctest: +SKIP
>>> decoder.choose([tokens_a, tokens_b], label_tokens)[0].probs            # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from kit.arms.label_walk import Branch, LabelWalk
from kit.errors import ArmError


@dataclass
class Decoded:
    """One item's result: generated tokens (generation) or label probabilities (scoring), with timings."""

    tokens: list[int] = field(default_factory=list)
    probs: np.ndarray | None = None
    ttft_s: float | None = None
    latency_s: float | None = None


def common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all ``prompts`` share, leaving every prompt at least one token of its own.

    >>> common_prefix([[1, 2, 3, 4], [1, 2, 5]])
    2
    >>> common_prefix([[1, 2], [1, 2]])
    1
    """
    if not prompts:
        return 0
    limit = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for i in range(max(0, limit)):
        token = first[i]
        if any(p[i] != token for p in prompts[1:]):
            return i
    return max(0, limit)


def cells_needed(prompts: Sequence[Sequence[int]], reserve: Sequence[int]) -> list[int]:
    """KV cells each item's sequence needs: its whole prompt (shared prefix included) plus ``reserve`` (tokens
    it may still add: generated tokens, or label tokens).

    >>> cells_needed([[1, 2, 3], [1, 2, 4, 5]], reserve=[10, 10])
    [13, 14]
    """
    return [len(p) + r for p, r in zip(prompts, reserve)]


def _shared(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common start of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class BatchDecoder:
    """A second llama.cpp context on the model of ``llm`` (a ``llama_cpp.Llama``) for ``n_seq`` sequences.

    The context has ``n_ctx`` KV cells in all, ``n_ctx // n_seq`` per sequence; the model's LoRA adapter if
    ``llm`` has one; and ``llm``'s threads. ``joint_prompts``: evaluate the items' own prompt tokens in one
    batch (for a GPU) rather than item by item (on the CPU one batch over several KV streams measured 18%
    slower than the same tokens item by item; the decoding steps are batched either way).
    """

    def __init__(self, llm: Any, *, n_seq: int, n_ctx: int, n_batch: int, prefix_cache: bool = True,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, joint_prompts: bool = False) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self._lc, self._internals, self.llm = llama_cpp, _internals, llm
        limit = int(llama_cpp.llama_max_parallel_sequences())
        if not 1 <= n_seq <= limit:
            raise ArmError(f"batch={n_seq} is outside what llama.cpp supports (1 to {limit} sequences)",
                           fix=f"choose a batch between 1 and {limit}")
        if n_ctx // n_seq < 2:
            raise ArmError(f"n_ctx={n_ctx} cannot be shared by {n_seq} sequences",
                           fix="raise n_ctx (each sequence holds n_ctx / batch cells) or lower the batch")
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = n_seq
        params.kv_unified = n_seq == 1  # a stream per sequence: each token attends to its own sequence only
        try:
            self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        except ValueError as exc:
            raise ArmError(f"llama.cpp could not create a context for {n_seq} sequences of n_ctx={n_ctx}: {exc}",
                           fix="lower the batch or n_ctx (the KV cache may not fit in memory)") from None
        adapter = getattr(llm, "_lora_adapter", None)
        if adapter is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if llama_cpp.llama_set_adapters_lora(self.ctx.ctx, adapters, 1, scales):
                raise ArmError("llama.cpp could not apply the LoRA adapter to the batched context",
                               fix="run with batch=1, or check the adapter with `kit models info`")
        self.n_seq, self.n_batch = n_seq, n_batch
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx.ctx))
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(self.ctx.ctx))
        self.prefix_cache = prefix_cache
        self.joint_prompts = joint_prompts
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self._batch = _internals.LlamaBatch(n_tokens=max(n_batch, n_seq), embd=0, n_seq_max=1, verbose=False)
        self._held: list[list[int]] = [[] for _ in range(n_seq)]  # the prefix whose KV each sequence holds
        self._vocab = llm._model.vocab
        self._n_vocab = llm.n_vocab()
        self._one = (llama_cpp.llama_token_data * 1)()
        self._all: Any = None  # every token's logit, for a grammar applied to the whole vocabulary

    def close(self) -> None:
        self._batch.close()
        self.ctx.close()

    # the KV cache ------------------------------------------------------------------------------
    def check_fits(self, prompts: Sequence[Sequence[int]], reserve: Sequence[int], *, where: str) -> None:
        """Raise ArmError when an item's sequence cannot be held in its ``n_ctx / batch`` cells, naming the
        n_ctx or batch that would hold it."""
        if len(prompts) > self.n_seq:
            raise ArmError(f"{len(prompts)} prompts given to a decoder of {self.n_seq} sequences", where=where,
                           fix=f"pass at most {self.n_seq} requests at once")
        need = max(cells_needed(prompts, reserve))
        if need <= self.n_ctx_seq:
            return
        fits = self.n_ctx // need
        lower = f", or lower the batch to {fits} (--batch {fits})" if fits >= 1 else ""
        raise ArmError(
            f"batch={self.n_seq} gives each sequence n_ctx / {self.n_seq} = {self.n_ctx_seq} KV cells, but an item "
            f"needs {need} (its prompt and up to {max(reserve)} answer tokens)", where=where,
            fix=f"raise n_ctx to at least {self.n_seq * need} (--n-ctx {self.n_seq * need} or "
                f"-o n_ctx={self.n_seq * need}){lower}")

    def _memory(self) -> Any:
        return self._lc.llama_get_memory(self.ctx.ctx)

    def _prepare(self, prompts: Sequence[Sequence[int]]) -> int:
        """Put the shared prefix in every item's sequence; return its length (the items' own tokens start there).

        Sequence 0 keeps the prefix from the last group: only what differs is evaluated again. Another
        sequence that still holds the same prefix keeps it too; only one that does not gets sequence 0's
        stream copied (a copy of the whole stream)."""
        lc, mem = self._lc, self._memory()
        c = common_prefix(prompts)
        prefix = list(prompts[0][:c])
        keep = _shared(self._held[0], prefix) if self.prefix_cache else 0
        lc.llama_memory_seq_rm(mem, 0, keep, -1)
        if c > keep:
            for _ in self._decode_chunks([(0, pos, prefix[pos], pos == c - 1) for pos in range(keep, c)]):
                pass
        self._held[0] = prefix
        for seq in range(1, len(prompts)):
            if self.prefix_cache and _shared(self._held[seq], prefix) == c:
                lc.llama_memory_seq_rm(mem, seq, c, -1)  # keeps the prefix, drops the last item's own tokens
            elif c:
                lc.llama_memory_seq_cp(mem, 0, seq, -1, -1)  # done at the next decode
            else:
                lc.llama_memory_seq_rm(mem, seq, -1, -1)
            self._held[seq] = prefix
        return c

    def _decode_chunks(self, entries: list[tuple[int, int, int, bool]]) -> Iterator[list[tuple[int, int]]]:
        """Decode (seq, pos, token, wants_logits) entries in chunks of ``n_batch``; after each chunk yield the
        (seq, batch index) of the entries whose logits it computed (valid until the next decode)."""
        b = self._batch.batch
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start:start + self.n_batch]
            outputs = []
            for j, (seq, pos, token, wants) in enumerate(chunk):
                b.token[j], b.pos[j], b.n_seq_id[j] = token, pos, 1
                b.seq_id[j][0] = seq
                b.logits[j] = wants
                if wants:
                    outputs.append((seq, j))
            b.n_tokens = len(chunk)
            code = self._lc.llama_decode(self.ctx.ctx, b)
            if code != 0:
                raise RuntimeError(f"llama_decode returned {code} for a batch of {len(chunk)} tokens")
            yield outputs

    def _logits(self, j: int) -> np.ndarray:
        """The next-token logits of batch entry ``j`` of the last decode, as a float32 view (no copy)."""
        ptr = self._lc.llama_get_logits_ith(self.ctx.ctx, j)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def _own_tokens(self, prompts: Sequence[Sequence[int]], c: int) -> Iterator[list[tuple[int, int]]]:
        """Evaluate each item's own prompt tokens (after the shared prefix): all items in one batch when
        ``joint_prompts``, else item by item. Yields as :meth:`_decode_chunks` does."""
        runs = [[(seq, pos, p[pos], pos == len(p) - 1) for pos in range(c, len(p))] for seq, p in enumerate(prompts)]
        if self.joint_prompts:
            yield from self._decode_chunks([entry for run in runs for entry in run])
        else:
            for run in runs:
                yield from self._decode_chunks(run)

    # label scoring -----------------------------------------------------------------------------
    def choose(self, prompts: Sequence[Sequence[int]], labels: Sequence[Sequence[int]]) -> list[Decoded]:
        """Each label's probability under label-constrained decoding, for every prompt (a token trie walk:
        one forward pass per prompt, then one token per branching label prefix, all items together)."""
        start = time.perf_counter()
        out = [Decoded() for _ in prompts]
        walks = [LabelWalk(labels) for _ in prompts]
        base = [len(p) for p in prompts]
        c = self._prepare(prompts)
        for outputs in self._own_tokens(prompts, c):
            for seq, j in outputs:
                out[seq].ttft_s = time.perf_counter() - start
                walks[seq].start(self._logits(j))
                if not walks[seq].pending:
                    out[seq].latency_s = time.perf_counter() - start
        lc, mem = self._lc, self._memory()
        while any(w.pending for w in walks):
            entries = []
            for seq, walk in enumerate(walks):
                if walk.pending:
                    branch: Branch = walk.next()
                    pos = base[seq] + branch.depth - 1
                    lc.llama_memory_seq_rm(mem, seq, pos, -1)  # drop the branch evaluated before at this position
                    entries.append((seq, pos, branch.token, True))
            for outputs in self._decode_chunks(entries):
                for seq, j in outputs:
                    walks[seq].feed(self._logits(j))
                    if not walks[seq].pending:
                        out[seq].latency_s = time.perf_counter() - start
        for done, walk in zip(out, walks):
            done.probs = walk.probs
        return out

    # generation ---------------------------------------------------------------------------------
    def _sampler(self, grammar: Any) -> Any:
        """Above temperature 0: the chain llama-cpp-python's create_completion builds (grammar, top-k 40,
        typical 1, top-p, min-p 0.05, temperature, seeded draw). At 0: the grammar alone (see :meth:`_pick`)."""
        lc = self._lc
        if self.temperature == 0.0:
            if grammar is None:
                return None
            return lc.llama_sampler_init_grammar(self._vocab, grammar._grammar.encode("utf-8"),
                                                 grammar._root.encode("utf-8"))
        smpl = self._internals.LlamaSampler()
        if grammar is not None:
            smpl.add_grammar(self.llm._model, grammar)
        smpl.add_top_k(40)
        smpl.add_typical(1.0, 1)
        smpl.add_top_p(self.top_p, 1)
        smpl.add_min_p(0.05, 1)
        smpl.add_temp(self.temperature)
        smpl.add_dist(self.seed)
        return smpl

    def _free(self, smpl: Any) -> None:
        if smpl is None:
            return
        if isinstance(smpl, self._internals.LlamaSampler):
            smpl.close()
        else:
            self._lc.llama_sampler_free(smpl)

    def _pick(self, smpl: Any, j: int) -> int:
        """The next token of batch entry ``j``: greedy under the grammar at temperature 0, else the chain's draw."""
        lc = self._lc
        if self.temperature != 0.0:
            return int(lc.llama_sampler_sample(smpl.sampler, self.ctx.ctx, j))
        row = self._logits(j)
        token = int(np.argmax(row))
        if smpl is None:
            return token
        one = self._one
        one[0].id, one[0].logit, one[0].p = token, float(row[token]), 0.0
        lc.llama_sampler_apply(smpl, ctypes.byref(lc.llama_token_data_array(data=one, size=1, selected=-1,
                                                                           sorted=False)))
        if not np.isfinite(one[0].logit):  # the grammar forbids the model's first choice: apply it to all tokens
            if self._all is None:
                self._all = self._internals.LlamaTokenDataArray(n_vocab=self._n_vocab)
            self._all.copy_logits(row)
            lc.llama_sampler_apply(smpl, ctypes.byref(self._all.candidates))
            token = int(np.argmax(self._all.candidates_data.logit))
        lc.llama_sampler_accept(smpl, token)
        return token

    def generate(self, prompts: Sequence[Sequence[int]], grammars: Sequence[Any],
                 max_tokens: Sequence[int]) -> list[Decoded]:
        """Generate for every prompt until an end-of-generation token or ``max_tokens`` answer tokens, each
        under its own grammar (None: free text); one decode per step for all unfinished items."""
        start = time.perf_counter()
        out = [Decoded() for _ in prompts]
        samplers = [self._sampler(g) for g in grammars]
        pos = [len(p) for p in prompts]
        try:
            c = self._prepare(prompts)
            ready: list[int] = []  # sequences whose next token is chosen and still to be decoded
            for outputs in self._own_tokens(prompts, c):
                ready += self._sample(outputs, samplers, out, max_tokens, start)
            while ready:
                entries = [(seq, pos[seq], out[seq].tokens[-1], True) for seq in ready]
                for seq in ready:
                    pos[seq] += 1
                ready = []
                for outputs in self._decode_chunks(entries):
                    ready += self._sample(outputs, samplers, out, max_tokens, start)
        finally:
            for smpl in samplers:
                self._free(smpl)
        return out

    def _sample(self, outputs: list[tuple[int, int]], samplers: list[Any], out: list[Decoded],
                max_tokens: Sequence[int], start: float) -> list[int]:
        """Choose the next token of each sequence in ``outputs``; return those that go on."""
        going = []
        for seq, j in outputs:
            token = self._pick(samplers[seq], j)
            done = out[seq]
            if done.ttft_s is None:
                done.ttft_s = time.perf_counter() - start
            if self._lc.llama_vocab_is_eog(self._vocab, token):
                done.latency_s = time.perf_counter() - start
                continue
            done.tokens.append(token)
            if len(done.tokens) >= max_tokens[seq]:
                done.latency_s = time.perf_counter() - start
                continue
            going.append(seq)
        return going

"""The llama.cpp arm: a GGUF model run in process by llama-cpp-python.

Classification answers are scored over the label set: the model's next-token probabilities are walked
along the tokens of every label (a trie, so shared prefixes are evaluated once: :mod:`kit.arms.label_walk`),
which gives each label's probability under label-constrained decoding. The answer is the most probable label — it
always parses — and that probability is the answer's confidence. Extraction answers are generated
under a GBNF grammar built from the task's JSON schema. The GGUF's own chat template formats prompts,
and the shared prompt prefix (system message and k-shot turns) is reused from the KV cache.

Option ``batch`` (default 1): with ``batch=N`` above 1 the arm answers up to N requests together in one
llama.cpp context (:mod:`kit.arms.llama_batch`): the shared prefix is evaluated once for all of them,
and every decoding step serves all unfinished items at once. Each item's latency is then the time from
the start of its batch until its answer was complete.

>>> arm = get_arm("llama_cpp:smollm2-135m-instruct")        # doctest: +SKIP
>>> arm.complete(request).text                               # doctest: +SKIP
'get_weather'
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from kit.arms.base import Arm, Completion, Request
from kit.arms.label_walk import LabelWalk
from kit.arms.options import ArmOptions, Field, parse_options
from kit.arms.registry import Backend
from kit.errors import ArmError, MissingDependency
from kit.models.convert import WeightType, converted, resolve_weights, weights_words
from kit.models.hardware import llama_threads

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class LlamaOptions(ArmOptions):
    """The options of an in-process llama.cpp arm (``-o KEY=VALUE``, or ``options:`` in an experiment)."""

    n_ctx: int = Field(4096, ge=1, description="tokens of context: prompt and answer")
    n_threads: int | None = Field(None, ge=1, examples=[4], description="threads for one token at a time; "
                                                                      "default: half the cores this process may use")
    n_threads_batch: int | None = Field(None, ge=1, examples=[4],
                                        description="threads for batches of tokens (prompts, batched steps); "
                                                    "default: the cores this process may use")
    n_gpu_layers: int = Field(0, ge=-1, description="layers on the GPU; -1: all")
    n_batch: int = Field(512, ge=1, description="prompt tokens evaluated per llama.cpp call")
    seed: int = 0
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    prefix_cache: bool = Field(True, description="reuse the prompt prefix shared with the previous item "
                                                 "(system message, shots) from the KV cache")
    lora_path: str | None = Field(None, description="a GGUF LoRA adapter to apply")
    lora_sha256: str | None = Field(None, description="the adapter's sha256, checked when given")
    batch: int = Field(1, ge=1, description="requests decoded together (kit.arms.llama_batch); not identity")
    weights: WeightType = Field(WeightType.NATIVE, strict=False, examples=["q8_0"],
                                description="the weights llama.cpp runs: `native` (the file as it is), or a copy "
                                            "converted once to `q8_0` (2x faster prompts than Q4_1 on a CPU), "
                                            "`bf16`, `f32`, or `auto` (bf16 where the CPU has AVX512-BF16, else "
                                            "q8_0; native on a GPU): kit.models.convert")


class LlamaCppArm(Arm):
    """A GGUF model in process. ``model`` is a catalog id or a path to a ``.gguf`` file.

    A subclass registered under another backend name sets ``backend`` to it (specs and identities then name
    that backend)."""

    backend = "llama_cpp"
    hosted = False
    load_kind = "batch"

    def __init__(self, model: str, **options: Any) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise MissingDependency("llama-cpp-python", purpose="for the llama_cpp arm") from None
        from kit.models.hardware import check_gpu_offload
        from kit.models import resolve_model

        if not hasattr(self, "spec"):  # a subclass (lora) names itself first
            self.spec = f"{self.backend}:{model}"
        self.options = parse_options(LlamaOptions, self.spec, options)
        batch = _check_batch(self.options.batch, where=self.spec)
        check_gpu_offload(self.options.n_gpu_layers)
        self.source = resolve_model(model)  # the file named; self.model: the weights that run
        self.model = converted(self.source, resolve_weights(self.options.weights, gpu=self.options.n_gpu_layers != 0))
        context = _Context.of(self.model.path, n_ctx=self.options.n_ctx, gpu=self.options.n_gpu_layers != 0)
        context.check(where=self.spec)
        self._llama_cpp = llama_cpp
        # with batch > 1 every answer comes from the batched context: this one only tokenizes, so it stays small
        self._sequential = batch == 1
        threads, threads_batch = llama_threads(self.options.n_threads, self.options.n_threads_batch)
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.model.path), n_threads=threads, n_threads_batch=threads_batch,
                n_ctx=self.options.n_ctx if self._sequential else min(self.options.n_ctx, 256),
                n_gpu_layers=self.options.n_gpu_layers, n_batch=self.options.n_batch, seed=self.options.seed,
                lora_path=self.options.lora_path, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            if "context" in str(exc).lower():  # the model loaded; its n_ctx did not fit
                raise context.error(f"llama.cpp could not create a context of n_ctx={self.options.n_ctx} tokens "
                                    f"({exc})", where=self.spec) from None
            raise ArmError(f"llama.cpp could not load {self.model.path}: {exc}", where=self.spec,
                           fix="check the file with `kit models info`; its architecture may need a newer "
                               "llama-cpp-python (pip install -U llama-cpp-python)") from None
        self._formatter = self._make_formatter()
        self._grammars: dict[str, Any] = {}
        self._label_tokens: dict[tuple[str, ...], list[list[int]]] = {}
        self._decoder: Any = None
        self.max_batch = 1
        self.set_load(batch)

    # identity and formatting -------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        o = self.options
        ident: dict[str, Any] = {
            "backend": self.backend, "model": self.model.id, "sha256": self.model.sha256, "quant": self.model.quant,
            "temperature": o.temperature, "top_p": o.top_p, "seed": o.seed, "chat_template": self._template_name,
            "n_gpu_layers": o.n_gpu_layers,  # GPU kernels round differently: a few answers change
        }
        if self.model is not self.source:
            ident["converted_from"] = self.source.sha256
        if o.lora_path:
            ident["lora_sha256"] = o.lora_sha256 or _sha256(o.lora_path)
        return ident

    def describe(self) -> str:
        return f"{self.model.id}{self.weights_words()} on llama.cpp (local, sha256 {self.model.sha256[:12]}…)"

    def weights_words(self) -> str:
        """`` Q4_1``, or `` Q8_0 (converted from Q4_1)`` when the arm runs a converted copy; empty when unknown."""
        words = weights_words(self.model, self.source)
        return f" {words}" if words else ""

    def _make_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        self._template_name = "gguf" if template else "chatml-fallback"
        model = self.llm._model
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        return Jinja2ChatFormatter(
            template=template or CHATML,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )

    def prompt_tokens(self, request: Request) -> list[int]:
        formatted = self._formatter(messages=list(request.messages))
        return self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    # load: how many requests are decoded together ---------------------------------------------
    def set_load(self, level: int) -> None:
        """Decode up to ``level`` requests together from now on (1: one at a time). What a load sweep varies.

        >>> arm.set_load(8); arm.max_batch                             # doctest: +SKIP
        8
        """
        level = _check_batch(level, where=self.spec)
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        if level > 1 or not self._sequential:
            from kit.arms.llama_batch import BatchDecoder

            o = self.options
            self._decoder = BatchDecoder(self.llm, n_seq=level, n_ctx=o.n_ctx, n_batch=o.n_batch,
                                         prefix_cache=o.prefix_cache, temperature=o.temperature, top_p=o.top_p,
                                         seed=o.seed, joint_prompts=o.n_gpu_layers != 0)
        self.max_batch = level

    # answering ---------------------------------------------------------------------------------
    def _too_long(self, request: Request, tokens: list[int], start: float) -> Completion | None:
        room = self.options.n_ctx - len(tokens) - (8 if request.choices else request.max_tokens)
        if room >= 0:
            return None
        return Completion(prompt_tokens=len(tokens), latency_s=time.perf_counter() - start,
                          error=f"prompt of {len(tokens)} tokens does not fit n_ctx={self.options.n_ctx}; "
                                "raise n_ctx or shorten the prompt (fewer shots)")

    def complete(self, request: Request) -> Completion:
        if self._decoder is not None:
            return self.complete_many([request])[0]
        start = time.perf_counter()
        try:
            tokens = self.prompt_tokens(request)
            too_long = self._too_long(request, tokens, start)
            if too_long is not None:
                return too_long
            if request.choices:
                return self._choose(tokens, request.choices, start)
            return self._generate(tokens, request, start)
        except (RuntimeError, ValueError) as exc:
            return Completion(latency_s=time.perf_counter() - start, error=f"llama.cpp: {exc}")

    async def acomplete_many(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer up to ``max_batch`` requests together (in a worker thread: the event loop stays free)."""
        return await asyncio.to_thread(self.complete_many, list(requests))

    def complete_many(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer ``requests`` together in the batched context (one at a time when ``batch`` is 1).

        A prompt that does not fit n_ctx on its own is an error on that item; a group that does not fit
        n_ctx together raises ArmError naming the n_ctx or batch that would.
        """
        if self._decoder is None:
            return [self.complete(r) for r in requests]
        start = time.perf_counter()
        out: list[Completion | None] = [None] * len(requests)
        labelled: dict[tuple[str, ...], list[tuple[int, list[int]]]] = {}
        generated: list[tuple[int, list[int]]] = []
        for i, request in enumerate(requests):
            tokens = self.prompt_tokens(request)
            out[i] = self._too_long(request, tokens, start)
            if out[i] is None:
                (labelled.setdefault(request.choices, []) if request.choices else generated).append((i, tokens))
        for choices, jobs in labelled.items():
            self._fill(out, jobs, start, lambda prompts, c=choices: self._choose_many(prompts, c, start))
        if generated:
            self._fill(out, generated, start,
                       lambda prompts: self._generate_many(prompts, [requests[i] for i, _ in generated], start))
        return [c if c is not None else Completion(error="llama.cpp: no answer") for c in out]

    def _fill(self, out: list[Completion | None], jobs: list[tuple[int, list[int]]], start: float, run: Any) -> None:
        try:
            done = run([tokens for _, tokens in jobs])
        except (RuntimeError, ValueError) as exc:  # a llama.cpp failure fails the items of that group
            done = [Completion(latency_s=time.perf_counter() - start, error=f"llama.cpp: {exc}") for _ in jobs]
        for (i, _), completion in zip(jobs, done):
            out[i] = completion

    def _labels(self, choices: tuple[str, ...]) -> list[list[int]]:
        """Each label's tokens followed by end-of-sequence (the label trie's paths)."""
        seqs = self._label_tokens.get(choices)
        if seqs is None:
            eos = self.llm.token_eos()
            seqs = [self.llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) + [eos] for c in choices]
            self._label_tokens[choices] = seqs
        return seqs

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        if schema is None:
            return None
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = self._llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def _label_completion(self, choices: tuple[str, ...], tokens: list[int], probs: np.ndarray, *,
                          latency: float, ttft: float | None) -> Completion:
        best = int(np.argmax(probs))
        return Completion(
            text=choices[best], prompt_tokens=len(tokens), completion_tokens=len(self._labels(choices)[best]) - 1,
            latency_s=latency, ttft_s=ttft, confidence=float(probs[best]),
            extra={"label_probs": {c: round(float(p), 6) for c, p in zip(choices, probs)}},
        )

    def _text_completion(self, tokens: list[int], text: str, *, latency: float, ttft: float | None) -> Completion:
        n_out = len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
        return Completion(text=text, prompt_tokens=len(tokens), completion_tokens=n_out, latency_s=latency, ttft_s=ttft)

    def _choose_many(self, prompts: list[list[int]], choices: tuple[str, ...], start: float) -> list[Completion]:
        seqs = self._labels(choices)
        depth = max(len(s) for s in seqs)
        self._decoder.check_fits(prompts, [depth] * len(prompts), where=self.spec)
        offset = time.perf_counter() - start
        return [self._label_completion(choices, tokens, d.probs, latency=offset + d.latency_s, ttft=offset + d.ttft_s)
                for tokens, d in zip(prompts, self._decoder.choose(prompts, seqs))]

    def _generate_many(self, prompts: list[list[int]], requests: list[Request], start: float) -> list[Completion]:
        limits = [r.max_tokens for r in requests]
        self._decoder.check_fits(prompts, limits, where=self.spec)
        grammars = [self._grammar(r.json_schema) for r in requests]
        offset = time.perf_counter() - start
        out = []
        for tokens, d in zip(prompts, self._decoder.generate(prompts, grammars, limits)):
            text = self.llm.detokenize(d.tokens, prev_tokens=tokens).decode("utf-8", errors="ignore")
            ttft = offset + d.ttft_s if d.ttft_s is not None else None
            out.append(self._text_completion(tokens, text, latency=offset + d.latency_s, ttft=ttft))
        return out

    def _eval_at(self, pos: int, tokens: list[int]) -> np.ndarray:
        """Evaluate ``tokens`` from position ``pos`` on (earlier positions kept); the next-token logits."""
        self.llm.n_tokens = pos
        self.llm.eval(tokens)
        logits = self._llama_cpp.llama_get_logits(self.llm.ctx)
        return np.array(np.ctypeslib.as_array(logits, shape=(self.llm.n_vocab(),)), dtype=np.float64)

    def _cached_prefix(self, tokens: list[int]) -> int:
        if not self.options.prefix_cache:
            return 0
        held = self.llm.input_ids[: self.llm.n_tokens]
        n = min(len(held), len(tokens) - 1)
        mismatch = np.nonzero(held[:n] != np.asarray(tokens[:n], dtype=held.dtype))[0]
        return int(mismatch[0]) if len(mismatch) else n

    def _choose(self, tokens: list[int], choices: tuple[str, ...], start: float) -> Completion:
        walk = LabelWalk(self._labels(choices))
        keep = self._cached_prefix(tokens)
        walk.start(self._eval_at(keep, tokens[keep:]))
        ttft = time.perf_counter() - start
        while walk.pending:
            branch = walk.next()  # its token goes after the prompt and the branch's path
            walk.feed(self._eval_at(len(tokens) + branch.depth - 1, [branch.token]))
        return self._label_completion(choices, tokens, walk.probs, latency=time.perf_counter() - start, ttft=ttft)

    def _generate(self, tokens: list[int], request: Request, start: float) -> Completion:
        grammar = self._grammar(request.json_schema)
        if not self.options.prefix_cache:
            self.llm.reset()
        ttft, pieces = None, []
        stream = self.llm.create_completion(
            prompt=tokens, max_tokens=request.max_tokens, temperature=self.options.temperature,
            top_p=self.options.top_p, seed=self.options.seed, grammar=grammar, stream=True,
        )
        for chunk in stream:
            if ttft is None:
                ttft = time.perf_counter() - start
            pieces.append(chunk["choices"][0]["text"])
        return self._text_completion(tokens, "".join(pieces), latency=time.perf_counter() - start, ttft=ttft)

    def close(self) -> None:
        decoder = getattr(self, "_decoder", None)
        if decoder is not None:
            decoder.close()
            self._decoder = None
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
            self.llm = None


@dataclass(frozen=True)
class _Context:
    """The context an arm asks for (``n_ctx``) beside the model's trained context and its KV cache's size."""

    n_ctx: int
    trained: int | None  # the model's trained context (GGUF context_length), when its header gives it
    kv_bytes: int | None  # the KV cache at n_ctx (f16), when the header gives the shapes
    memory: int  # bytes of RAM (and, with layers on a GPU, the largest GPU's memory)

    @classmethod
    def of(cls, path: Any, *, n_ctx: int, gpu: bool) -> _Context:
        import psutil

        from kit.models.gguf import read_gguf_info
        from kit.models.hardware import gpus

        info = read_gguf_info(path)
        vram = max((g["memory_total_bytes"] for g in gpus()), default=0) if gpu else 0
        return cls(n_ctx=n_ctx, trained=info.context_length, kv_bytes=info.kv_cache_bytes(n_ctx),
                   memory=int(psutil.virtual_memory().total) + int(vram))

    def check(self, *, where: str) -> None:
        """An ArmError naming n_ctx when its KV cache alone cannot fit this machine's memory (llama.cpp would
        fail to create the context, after a long try)."""
        if self.kv_bytes is not None and self.kv_bytes > self.memory:
            raise self.error(f"n_ctx={self.n_ctx} needs a KV cache of {_size(self.kv_bytes)}, more than this "
                             f"machine's {_size(self.memory)} of memory", where=where)

    def error(self, problem: str, *, where: str) -> ArmError:
        """``problem`` with the model's trained context, and the n_ctx to use instead."""
        if self.trained:
            problem += f"; the model was trained on a context of {self.trained} tokens"
        size = self.kv_bytes / self.n_ctx if self.kv_bytes else None  # KV bytes per token
        fits = int(self.memory / 2 / size) // 1024 * 1024 if size else None  # half the memory for the KV cache
        target = min(v for v in (self.trained, fits, 4096 if not (self.trained or fits) else None) if v)
        return ArmError(problem, where=where,
                        fix=f"lower n_ctx to {target} or less (--n-ctx {target} or -o n_ctx={target}); a prompt and "
                            "its answer need only a few thousand tokens")


def _size(n: int) -> str:
    """Bytes for people: '2.3 TB', '23 GB', '512 MB'."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e6:.0f} MB"


def _check_batch(batch: Any, *, where: str) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArmError(f"batch={batch!r} is not a number of requests", where=where,
                       fix="give a whole number of at least 1 (--batch 8 or -o batch=8); 1 decodes one at a time")
    return batch


def _sha256(path: str) -> str:
    from kit.models import file_sha256

    return file_sha256(path)


def _models(name: str) -> list[str]:
    return [name]


# found through the kit.arms entry point `llama_cpp` (pyproject.toml)
BACKEND = Backend("llama_cpp", LlamaCppArm, options=LlamaOptions, in_process=True, models=_models)

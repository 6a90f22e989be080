"""The llama.cpp arm: a GGUF model run in process by llama-cpp-python.

Classification answers are scored over the label set: the model's next-token probabilities are walked
along the tokens of every label (a trie, so shared prefixes are evaluated once), which gives each
label's probability under label-constrained decoding. The answer is the most probable label — it
always parses — and that probability is the answer's confidence. Extraction answers are generated
under a GBNF grammar built from the task's JSON schema. The GGUF's own chat template formats prompts,
and the shared prompt prefix (system message and k-shot turns) is reused from the KV cache.

>>> arm = get_arm("llama_cpp:smollm2-135m-instruct")        # doctest: +SKIP
>>> arm.complete(request).text                               # doctest: +SKIP
'get_weather'
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kit.arms.base import Arm, Completion, Request, build_options, register_arm
from kit.errors import ArmError, MissingDependency

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class LlamaOptions:
    n_ctx: int = field(default=4096, metadata={"min": 1})
    n_threads: int | None = field(default=None, metadata={"min": 1})
    n_gpu_layers: int = field(default=0, metadata={"min": -1})
    n_batch: int = field(default=512, metadata={"min": 1})
    seed: int = 0
    temperature: float = field(default=0.0, metadata={"min": 0})
    top_p: float = field(default=1.0, metadata={"above": 0})
    prefix_cache: bool = True
    lora_path: str | None = None
    lora_sha256: str | None = None


class LlamaCppArm(Arm):
    """A GGUF model in process. ``model`` is a catalog id or a path to a ``.gguf`` file."""

    hosted = False

    def __init__(self, model: str, **options: Any) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise MissingDependency("llama-cpp-python", purpose="for the llama_cpp arm") from None
        from kit.models.hardware import check_gpu_offload
        from kit.models import resolve_model

        if not hasattr(self, "spec"):  # a subclass (lora) names itself first
            self.spec = f"llama_cpp:{model}"
        self.options = build_options(LlamaOptions, self.spec, options)
        check_gpu_offload(self.options.n_gpu_layers)
        self.model = resolve_model(model)
        self._llama_cpp = llama_cpp
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.model.path), n_ctx=self.options.n_ctx, n_threads=self.options.n_threads,
                n_gpu_layers=self.options.n_gpu_layers, n_batch=self.options.n_batch, seed=self.options.seed,
                lora_path=self.options.lora_path, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ArmError(f"llama.cpp could not load {self.model.path}: {exc}", where=self.spec,
                           fix="check the file with `kit models info`; its architecture may need a newer "
                               "llama-cpp-python (pip install -U llama-cpp-python)") from None
        self._formatter = self._make_formatter()
        self._grammars: dict[str, Any] = {}
        self._label_tokens: dict[tuple[str, ...], list[list[int]]] = {}

    # identity and formatting -------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        o = self.options
        ident: dict[str, Any] = {
            "backend": "llama_cpp", "model": self.model.id, "sha256": self.model.sha256, "quant": self.model.quant,
            "temperature": o.temperature, "top_p": o.top_p, "seed": o.seed, "chat_template": self._template_name,
            "n_gpu_layers": o.n_gpu_layers,  # GPU kernels round differently: a few answers change
        }
        if o.lora_path:
            ident["lora_sha256"] = o.lora_sha256 or _sha256(o.lora_path)
        return ident

    def describe(self) -> str:
        quant = f" {self.model.quant}" if self.model.quant else ""
        return f"{self.model.id}{quant} on llama.cpp (local, sha256 {self.model.sha256[:12]}…)"

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

    # answering ---------------------------------------------------------------------------------
    def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        try:
            tokens = self.prompt_tokens(request)
            room = self.options.n_ctx - len(tokens) - (8 if request.choices else request.max_tokens)
            if room < 0:
                return Completion(prompt_tokens=len(tokens), latency_s=time.perf_counter() - start,
                                  error=f"prompt of {len(tokens)} tokens does not fit n_ctx={self.options.n_ctx}; "
                                        "raise n_ctx or shorten the prompt (fewer shots)")
            if request.choices:
                return self._choose(tokens, request.choices, start)
            return self._generate(tokens, request, start)
        except (RuntimeError, ValueError) as exc:
            return Completion(latency_s=time.perf_counter() - start, error=f"llama.cpp: {exc}")

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
        seqs = self._label_tokens.get(choices)
        if seqs is None:
            eos = self.llm.token_eos()
            seqs = [self.llm.tokenize(c.encode("utf-8"), add_bos=False, special=False) + [eos] for c in choices]
            self._label_tokens[choices] = seqs
        keep = self._cached_prefix(tokens)
        logits = self._eval_at(keep, tokens[keep:])
        ttft = time.perf_counter() - start
        probs = np.zeros(len(choices))
        self._walk(logits, base=len(tokens), depth=0, members=list(range(len(choices))), seqs=seqs,
                   mass=1.0, probs=probs)
        best = int(np.argmax(probs))
        return Completion(
            text=choices[best], prompt_tokens=len(tokens), completion_tokens=len(seqs[best]) - 1,
            latency_s=time.perf_counter() - start, ttft_s=ttft, confidence=float(probs[best]),
            extra={"label_probs": {c: round(float(p), 6) for c, p in zip(choices, probs)}},
        )

    def _walk(self, logits: np.ndarray, *, base: int, depth: int, members: list[int], seqs: list[list[int]],
              mass: float, probs: np.ndarray) -> None:
        """Spread ``mass`` over the labels in ``members`` that share their first ``depth`` tokens."""
        groups: dict[int, list[int]] = {}
        for m in members:
            groups.setdefault(seqs[m][depth], []).append(m)
        nexts = np.array(list(groups))
        z = logits[nexts] - logits[nexts].max()
        share = np.exp(z) / np.exp(z).sum()
        for (token, group), p in zip(groups.items(), share):
            if len(group) == 1:
                probs[group[0]] = mass * p
                continue
            child = self._eval_at(base + depth, [token])
            self._walk(child, base=base, depth=depth + 1, members=group, seqs=seqs, mass=mass * p, probs=probs)

    def _generate(self, tokens: list[int], request: Request, start: float) -> Completion:
        grammar = None
        if request.json_schema is not None:
            key = json.dumps(request.json_schema, sort_keys=True)
            if key not in self._grammars:
                self._grammars[key] = self._llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
            grammar = self._grammars[key]
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
        text = "".join(pieces)
        n_out = len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0
        return Completion(text=text, prompt_tokens=len(tokens), completion_tokens=n_out,
                          latency_s=time.perf_counter() - start, ttft_s=ttft)

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
            self.llm = None


def _sha256(path: str) -> str:
    from kit.models import file_sha256

    return file_sha256(path)


register_arm("llama_cpp", LlamaCppArm)

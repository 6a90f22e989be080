"""LoRA fine-tuning: training on the train split, export to GGUF, the lora arm on llama.cpp, the store.

Real torch/transformers/peft training of the embedded SmolLM2-135M (read from its GGUF) on a handful of
train items for a few steps, real llama.cpp loading the exported adapter.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
import pytest

from kit.errors import ArmError, ConfigError, MissingDependency

BASE = "smollm2-135m-instruct"
QK = ("q_proj", "k_proj")


@pytest.fixture(scope="module")
def hf_base():
    """The base model and tokenizer as transformers reads them from the embedded GGUF (loaded once)."""
    from kit.finetune.train import load_base
    from kit.models import resolve_model

    model, tok, info = load_base(resolve_model(BASE).path, device="cpu", quantize="none")
    return model, tok, info


@pytest.fixture(scope="module")
def small_snips(snips):
    """SNIPS with a handful of train items (the test split is untouched)."""
    return dataclasses.replace(snips, train=snips.train[:8])


def _peft(model, targets, seed=0):
    import peft
    import torch

    torch.manual_seed(seed)
    config = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(targets), task_type="CAUSAL_LM")
    return peft.get_peft_model(model, config)


def _next_logits(model, tok, messages):
    import torch

    text = tok.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1].double().numpy()


def test_rope_row_order_matches_llama_cpp_permute():
    from kit.finetune.gguf_export import rope_row_order

    # Reference: llama.cpp convert_hf_to_gguf.py LlamaModel.permute, written as a reshape:
    # rows (heads, 2, d/2) -> (heads, d/2, 2)
    for rows, heads in ((576, 9), (192, 3), (8, 2)):
        w = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        ref = w.reshape(heads, 2, rows // heads // 2, 3).swapaxes(1, 2).reshape(rows, 3)
        np.testing.assert_array_equal(w[rope_row_order(rows, heads)], ref)
    # the permuted B gives the permuted update: (P B) A == P (B A)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 10)), rng.standard_normal((12, 4))
    order = rope_row_order(12, 2)
    np.testing.assert_allclose(b[order] @ a, (b @ a)[order])
    with pytest.raises(Exception, match="heads"):
        rope_row_order(10, 3)


def test_adapter_file_roundtrip(tmp_path):
    from kit.finetune.gguf_export import adapter_tensors, read_adapter, write_adapter
    from kit.models import file_sha256

    rng = np.random.default_rng(1)
    state = {}
    for layer in range(2):
        for mod, out in (("self_attn.q_proj", 8), ("self_attn.k_proj", 4), ("mlp.down_proj", 6)):
            state[f"base_model.model.model.layers.{layer}.{mod}.lora_A.weight"] = rng.standard_normal((2, 6))
            state[f"base_model.model.model.layers.{layer}.{mod}.lora_B.weight"] = rng.standard_normal((out, 2))
    tensors = adapter_tensors(state, arch="llama", n_heads=2, n_kv_heads=1)
    assert sorted(tensors) == [f"blk.{n}.{t}.weight" for n in range(2) for t in ("attn_k", "attn_q", "ffn_down")]
    sha = write_adapter(tmp_path / "a.gguf", tensors, arch="llama", alpha=16, metadata={"task": "t"})
    assert sha == file_sha256(tmp_path / "a.gguf")
    meta, back = read_adapter(tmp_path / "a.gguf")
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == 16.0 and meta["general.architecture"] == "llama" and meta["kit.task"] == "t"
    q_b = state["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"]
    np.testing.assert_allclose(back["blk.1.attn_q.weight.lora_b"], q_b[[0, 2, 1, 3, 4, 6, 5, 7]], rtol=1e-6)
    np.testing.assert_allclose(back["blk.1.ffn_down.weight.lora_b"],
                               state["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"], rtol=1e-6)
    assert back["blk.0.attn_q.weight.lora_a"].shape == (2, 6)  # (rank, in): ggml ne = [in, rank]
    with pytest.raises(Exception, match="unexpected tensor"):
        adapter_tensors({"model.embed_tokens.weight": np.zeros((2, 2))}, arch="llama", n_heads=1, n_kv_heads=1)


def test_prompt_tokens_match_llama_cpp(hf_base, small_snips, smol_arm):
    """Training sees exactly the tokens the llama.cpp arm evaluates, and the answer as it scores labels."""
    from kit.finetune.train import build_examples
    from kit.tasks.prompts import build_request

    _, tok, _ = hf_base
    examples = build_examples(small_snips, tok)
    assert [e.item_id for e in examples] == [i.id for i in small_snips.train]
    for ex, item in list(zip(examples, small_snips.train))[:3]:
        assert list(ex.prompt) == smol_arm.prompt_tokens(build_request(small_snips, item))
        label = smol_arm.llm.tokenize(item.gold.encode(), add_bos=False, special=False) + [smol_arm.llm.token_eos()]
        assert list(ex.answer) == label


def test_the_fine_tune_learns_the_prompt_it_is_asked_with(hf_base, small_snips, smol_arm):
    """A 0-shot fine-tune trains on exactly the tokens the llama.cpp arm evaluates for the 0-shot variant (far
    shorter than the task's own 5 shots), and its training data hash, which names the adapter, differs."""
    from kit.finetune.adapters import training_data_hash
    from kit.finetune.train import build_examples
    from kit.tasks.prompts import PromptVariant, build_request

    _, tok, _ = hf_base
    zero = PromptVariant(name="0-shot", shots=0)
    own, bare = build_examples(small_snips, tok), build_examples(small_snips, tok, zero)
    assert [e.answer for e in bare] == [e.answer for e in own]
    assert all(len(b.prompt) < len(o.prompt) / 2 for o, b in zip(own, bare))
    for ex, item in list(zip(bare, small_snips.train))[:3]:
        assert list(ex.prompt) == smol_arm.prompt_tokens(build_request(small_snips, item, variant=zero))
    assert training_data_hash(small_snips, zero) != training_data_hash(small_snips)


def test_the_base_read_from_the_gguf_is_kept_and_reused(hf_base):
    """The first read of the GGUF (slow in transformers) is kept as a transformers folder; later loads use it."""
    import torch

    from kit.finetune.train import dequantised, load_base
    from kit.models import resolve_model

    path = resolve_model(BASE).path
    folder = dequantised(path, dtype="float32")
    weights = sorted(folder.glob("*.safetensors"))
    assert (folder / "config.json").is_file() and weights and (folder / "tokenizer_config.json").is_file()
    stamp = [w.stat().st_mtime_ns for w in weights]
    model, _, _ = load_base(path, device="cpu", quantize="none")
    assert dequantised(path, dtype="float32") == folder and [w.stat().st_mtime_ns for w in weights] == stamp
    name, tensor = next(iter(hf_base[0].state_dict().items()))
    assert (model.state_dict()[name] == tensor).all()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no scratch folder left behind
    # bfloat16 (precision: bfloat16) is cast from the float32 folder: the same values
    half, _, _ = load_base(path, device="cpu", quantize="none", dtype="bfloat16")
    assert dequantised(path, dtype="bfloat16").name.endswith("-bfloat16")
    assert half.dtype == torch.bfloat16 and torch.equal(half.state_dict()[name], tensor.to(torch.bfloat16))


def test_shared_prefix_and_passes_give_the_loss_and_gradients_of_one_plain_pass(hf_base, small_snips):
    """A step run as a shared prefix plus passes of a few rows (each freed by its own backward) gives the loss
    and gradients of transformers' own causal-LM loss over the full padded sequences in one pass."""
    import torch

    from kit.finetune.train import Example, accumulate_step, build_examples, passes, shared_prefix

    model, tok, _ = hf_base
    layers, depth = model.model.layers, model.config.num_hidden_layers
    model.model.layers, model.config.num_hidden_layers = layers[:4], 4  # the same arithmetic in 4 layers, not 30
    lora = _peft(model, ("q_proj", "v_proj"))
    try:
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.02)
        examples = build_examples(small_snips, tok)[:3]
        prefix = shared_prefix(examples)
        assert len(prefix) > 400  # system message and the 5 k-shot turns

        def grads():
            out = torch.cat([p.grad.flatten() for p in lora.parameters() if p.grad is not None])
            lora.zero_grad(set_to_none=True)
            return out

        # the reference: one padded batch of the full sequences, labels on the answer tokens (transformers' loss)
        seqs = [list(e.prompt) + list(e.answer) for e in examples]
        width = max(map(len, seqs))
        ids = torch.tensor([s + [tok.eos_token_id] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        labels = torch.tensor([[-100] * len(e.prompt) + list(e.answer) + [-100] * (width - len(s))
                               for e, s in zip(examples, seqs)])
        lora.zero_grad(set_to_none=True)
        ref = lora(input_ids=ids, attention_mask=mask, labels=labels).loss
        ref.backward()
        g_ref = grads()
        own = [Example(e.item_id, e.prompt[len(prefix):], e.answer) for e in examples]
        tokens = 2 * max(len(e.prompt) + len(e.answer) for e in own)  # at most 2 rows a pass: 2 passes
        assert len(passes(own, tokens=tokens)) == 2 and len(prefix) > tokens  # the prefix is run again too
        for pre, rows, budget in ((prefix, own, tokens), (prefix, own, 10**6), ((), examples, 10**6)):
            loss = accumulate_step(lora, rows, prefix=pre, device="cpu", pad_id=tok.eos_token_id,
                                   tokens_per_pass=budget)  # prefix run again / held / no prefix
            g = grads()
            assert loss == pytest.approx(ref.item(), rel=1e-4)
            assert float((g - g_ref).norm() / g_ref.norm()) < 1e-3
    finally:
        lora.unload()
        model.model.layers, model.config.num_hidden_layers = layers, depth


def test_a_bfloat16_base_gives_the_float32_step_within_rounding(hf_base, small_snips):
    """Trained in bfloat16 (``precision: bfloat16``), a step's loss and gradients are
    the float32 step's up to bfloat16 rounding: the loss within 2%, the gradient pointing the same way."""
    import copy

    import torch

    from kit.finetune.train import Example, accumulate_step, build_examples, shared_prefix

    model, tok, _ = hf_base
    layers, depth = model.model.layers, model.config.num_hidden_layers
    model.model.layers, model.config.num_hidden_layers = layers[:4], 4
    try:
        half = copy.deepcopy(model).to(torch.bfloat16)
        examples = build_examples(small_snips, tok)
        prefix = shared_prefix(examples)
        rows = [Example(e.item_id, e.prompt[len(prefix):], e.answer) for e in examples]
        out = []
        for base in (model, half):
            lora = _peft(base, ("q_proj", "v_proj", "down_proj"))
            try:
                for name, p in lora.named_parameters():
                    if "lora_B" in name:
                        torch.manual_seed(1)
                        torch.nn.init.normal_(p, std=0.02)
                assert {p.dtype for p in lora.parameters() if p.requires_grad} == {torch.float32}  # LoRA stays fp32
                loss = accumulate_step(lora, rows, prefix=prefix, device="cpu", pad_id=tok.eos_token_id)
                out.append((loss, torch.cat([p.grad.flatten() for p in lora.parameters() if p.grad is not None])))
            finally:
                lora.unload()
        (l32, g32), (l16, g16) = out
        assert l16 == pytest.approx(l32, rel=0.02)
        assert float(g32 @ g16 / (g32.norm() * g16.norm())) > 0.99
    finally:
        model.model.layers, model.config.num_hidden_layers = layers, depth


def test_training_changes_adapter_and_outputs_and_llama_cpp_follows(hf_base, small_snips, snips, tmp_path):
    """A few steps on 8 items change the LoRA weights and the model's logits; the exported adapter changes
    llama.cpp's logits the same way (and only with llama.cpp's q/k row order)."""
    import peft

    from kit.arms import get_arm
    from kit.finetune.gguf_export import adapter_tensors, write_adapter
    from kit.finetune.train import build_examples, train
    from kit.tasks.prompts import build_request

    model, tok, info = hf_base
    lora = _peft(model, QK)
    try:
        before = {n: p.detach().clone() for n, p in lora.named_parameters() if p.requires_grad}
        assert all(float(v.abs().max()) == 0 for n, v in before.items() if "lora_B" in n)  # B starts at zero
        messages = build_request(snips, snips.test[0]).messages
        with lora.disable_adapter():
            base_logits = _next_logits(lora, tok, messages)
        run = train(lora, build_examples(small_snips, tok), steps=3, batch_size=8, lr=5e-3, seed=0, device="cpu",
                    pad_id=tok.eos_token_id, share_prefix=True)
        assert len(run["losses"]) == 3 and run["losses"][-1] < run["losses"][0]
        changed = [n for n, p in lora.named_parameters() if p.requires_grad and not np.allclose(
            p.detach().numpy(), before[n].numpy())]
        assert len(changed) == len(before)  # every A and B moved
        tuned_logits = _next_logits(lora, tok, messages)
        torch_shift = tuned_logits - base_logits
        assert np.abs(torch_shift).mean() > 0.05  # measurable change of the model's outputs

        state = peft.get_peft_model_state_dict(lora, save_embedding_layers=False)
        good = tmp_path / "good.lora.gguf"
        plain = tmp_path / "unpermuted.lora.gguf"
        write_adapter(good, adapter_tensors(state, arch="llama", n_heads=info["n_heads"],
                                            n_kv_heads=info["n_kv_heads"]), arch="llama", alpha=16)
        write_adapter(plain, adapter_tensors(state, arch="no-reorder", n_heads=info["n_heads"],
                                             n_kv_heads=info["n_kv_heads"]), arch="llama", alpha=16)
    finally:
        lora.unload()

    def cpp_logits(spec):
        with get_arm(spec, n_ctx=2048) as arm:
            toks = arm.prompt_tokens(build_request(snips, snips.test[0]))
            return arm._eval_at(0, toks)

    base_cpp = cpp_logits(f"llama_cpp:{BASE}")
    top = np.argsort(-tuned_logits)[:200]
    err = {}
    for name, path in (("good", good), ("plain", plain)):
        shift = cpp_logits(f"lora:{BASE}+{path}") - base_cpp
        assert np.abs(shift).mean() > 0.05  # the adapter loads and changes llama.cpp's logits
        err[name] = np.linalg.norm(shift[top] - torch_shift[top]) / np.linalg.norm(torch_shift[top])
    # llama.cpp's Q4_1 kernels differ slightly from the dequantised float32 model, hence the tolerance
    assert err["good"] < 0.35, err
    assert err["plain"] > 2 * err["good"], err  # without the row reordering the export would be wrong


def test_missing_stack_names_the_install(monkeypatch):
    from kit.finetune.train import require_training_stack

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(MissingDependency) as info:
        require_training_stack()
    text = str(info.value)
    assert "kit[finetune]" in text and "torch==2.13.0" in text and "peft" in text


def test_option_errors(snips, tmp_path):
    from kit.finetune import finetune

    with pytest.raises(ConfigError, match="CUDA"):
        finetune(snips, device="cpu", quantize="4bit", out_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="cannot export"):
        finetune(snips, targets=("lm_head",), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="max_steps"):
        finetune(snips, max_steps=0, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="precision: auto, float32, bfloat16"):
        finetune(snips, precision="fp16", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="no train items"):
        finetune(dataclasses.replace(snips, train=()), out_dir=tmp_path)


def test_adapter_name_follows_data_base_hyperparameters_and_seed(snips, small_snips, tmp_path):
    from kit.finetune.adapters import DEFAULT_TARGETS, _plan

    def plan(task=snips, **change):
        options = {"base": BASE, "max_steps": 40, "out_dir": tmp_path, "lr": 1e-3, "rank": 8, "alpha": 16,
                   "batch_size": 8, "seed": 0, "targets": DEFAULT_TARGETS, "device": "cpu", "quantize": "auto",
                   "hf_weights": None}
        return _plan(task, **{**options, **change})

    first = plan()
    assert plan().adapter == first.adapter and first.adapter.parent == tmp_path  # same inputs, same adapter
    assert first.hyper["quantize"] == "none" and first.hyper["precision"] == "float32"  # auto: float32 on the CPU
    assert plan(precision="float32").adapter == first.adapter
    others = [plan(seed=1), plan(max_steps=41), plan(lr=2e-3), plan(rank=4), plan(task=small_snips),
              plan(precision="bfloat16")]
    assert len({first.adapter, *(o.adapter for o in others)}) == 7
    assert first.adapter.name.startswith("snips-intents.smollm2-135m-instruct.")


def test_lora_spec_errors(tmp_path):
    from kit.arms import get_arm

    with pytest.raises(ArmError, match="BASE\\+ADAPTER"):
        get_arm(f"lora:{BASE}")
    with pytest.raises(ArmError, match="not found"):
        get_arm(f"lora:{BASE}+{tmp_path / 'missing.gguf'}")


@pytest.mark.slow
def test_finetune_cli_cache_and_lora_arm_in_store(small_snips, snips, tmp_path, capsys, store, monkeypatch):
    """finetune() on 8 items for 3 steps, exported, cached; the lora arm runs test items only."""
    from kit.arms import get_arm
    from kit.cli.finetune import register_cli
    from kit.finetune import finetune, load_result
    from kit.models import file_sha256
    from kit.run.runner import run_arm

    result = finetune(small_snips, max_steps=3, lr=5e-3, out_dir=tmp_path, progress=False)
    assert result.steps == 3 and len(result.losses) == 3 and not result.reused
    assert result.adapter_sha256 == file_sha256(result.adapter_path)
    assert result.train_item_ids == [i.id for i in small_snips.train]
    assert result.hardware["cpu"]["logical_cores"] >= 1 and result.train_seconds > 0
    assert result.hyperparameters["rank"] == 8 and result.device == "cpu"
    with open(result.manifest_path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    assert manifest["adapter_sha256"] == result.adapter_sha256 and manifest["losses"] == result.losses
    assert load_result(result.manifest_path).arm_spec == result.arm_spec

    # same task, base, hyper-parameters and seed: served from the cache, through the CLI too
    again = finetune(small_snips, max_steps=3, lr=5e-3, out_dir=tmp_path, progress=False)
    assert again.reused and again.adapter_sha256 == result.adapter_sha256 and again.losses == result.losses
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["finetune", "--task", "snips-intents", "--base", BASE, "--max-steps", "3",
                              "--lr", "0.005", "--out", str(tmp_path), "--quiet"])
    monkeypatch.setattr("kit.tasks.load_task", lambda name, **kw: small_snips)  # the same 8 train items
    args.func(args)
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == result.adapter_path  # the adapter's path is printed last
    assert "reused" in out.err

    items = list(snips.test[:6])
    with get_arm(result.arm_spec, n_ctx=2048) as tuned, get_arm(f"llama_cpp:{BASE}", n_ctx=2048) as base:
        assert tuned.spec == result.arm_spec
        run_arm(snips, tuned, store=store, items=items)
        run_arm(snips, base, store=store, items=items)
    frame = store.responses(task=snips.name)
    tuned_rows = frame[frame["arm"] == result.arm_spec]
    assert len(tuned_rows) == len(items) and tuned_rows["error"].isna().all()
    # no evaluated item was in the training split: checked from what the store holds
    assert not set(frame["item_id"]) & set(result.train_item_ids)
    assert not set(frame["item_id"]) & {i.id for i in snips.train}
    # the adapter's hash is part of the model identity the store recorded
    assert (tuned_rows["model_identity"] == f"{file_sha256(tuned.model.path)}+lora:{result.adapter_sha256}").all()
    assert all(json.loads(p)["lora_sha256"] == result.adapter_sha256 for p in tuned_rows["params"])
    runs = store.runs(task=snips.name)
    assert any(result.adapter_sha256 in ident for ident in runs["identity"])
    # and its label probabilities differ from the base model's on the same items
    base_rows = frame[frame["arm"] == f"llama_cpp:{BASE}"].set_index("item_id")
    shift = [abs(json.loads(t)["label_probs"][lab] - json.loads(base_rows.loc[i, "extra"])["label_probs"][lab])
             for i, t in zip(tuned_rows["item_id"], tuned_rows["extra"]) for lab in snips.type.labels]
    assert max(shift) > 0.01

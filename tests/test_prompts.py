"""Prompt variants and the three splits: rendering (balanced, similar, letters), letters read back as labels,
schema errors for bad variants, the dev split carved without touching the test split — and a real answer stage
(loopback OpenAI-style servers, the real store) proving that the test items were asked with exactly one prompt
per option and that no test id is among the dev or train ids."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3

import pytest

from conftest import ROOT
from kit.errors import ConfigError, TaskError
from kit.experiment import Experiment
from kit.pipeline.folder import Doc, RunFolder, Table
from kit.tasks import load_task
from kit.tasks.prompts import (DEFAULT_PROMPT, PromptVariant, build_request, check_variant, parse_answer, shots_for,
                               similarity)

LABELS = ("alpha", "beta", "gamma")
N = 120


def _gold(i: int) -> str:
    return LABELS[i % 3] if i % 5 else "alpha"  # alpha is the most common label


def write_task(folder, *, n: int = N, extra: str = "") -> None:
    rows = [{"id": f"t{i}", "text": f"ticket number {i} about {_gold(i)} things", "label": _gold(i)} for i in range(n)]
    (folder / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "tickets.yaml").write_text(
        "name: tickets\ntype: classification\ndata: tickets.jsonl\nlabels: [alpha, beta, gamma]\nsystem: You route.\n"
        "instruction: 'Route to one of {labels}: {text}'\nshots: 2\n"
        f"split: {{test_fraction: 0.5, seed: 1, stratify: true{extra}}}\n", encoding="utf-8")


@pytest.fixture
def tickets(tmp_path):
    write_task(tmp_path)
    return load_task(tmp_path / "tickets.yaml")


# ------------------------------------------------------------------------------------------------- the splits
def test_the_dev_split_is_carved_from_the_non_test_items_and_leaves_the_test_split_as_it_was(tickets, tmp_path):
    ids = [{i.id for i in part} for part in (tickets.train, tickets.dev, tickets.test)]
    assert len(tickets.test) == 60 and len(tickets.dev) == 12  # 20% of the 58 non-test items less 2 shots
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == {i.id for i in tickets.items}
    assert {i.id for i in tickets.shot_items()} <= ids[0]  # the task's shots are train items
    # dev_fraction 0: no dev split; the test split is the same, in the same order
    write_task(tmp_path, extra=", dev_fraction: 0")
    nodev = load_task(tmp_path / "tickets.yaml")
    assert nodev.dev == () and [i.id for i in nodev.test] == [i.id for i in tickets.test]
    assert nodev.shot_items() == tickets.shot_items()
    write_task(tmp_path, extra=", dev_fraction: 1.5")
    with pytest.raises(TaskError, match="dev_fraction must be a number in"):
        load_task(tmp_path / "tickets.yaml")


def test_a_small_task_has_no_dev_split(tmp_path):
    write_task(tmp_path, n=30)  # 15 non-test items, 2 of them shots: 20% is 3, under the floor of 10
    task = load_task(tmp_path / "tickets.yaml")
    assert task.dev == () and len(task.train) == 15


def test_the_dev_split_has_the_documented_size_when_each_label_is_small(tmp_path):
    """Issue 26 case 13: 120 items over 30 labels left 2 non-test items per label; rounding each label's share
    (0.4) on its own gave no dev split at all where the documented rule (20% of 60) gives 12. The largest
    remainders now take exactly 12, at most one per label here, and the test split is the one it always was."""
    labels = [f"l{k:02d}" for k in range(30)]
    rows = [{"id": f"t{i}", "text": f"ticket {i}", "label": labels[i % 30]} for i in range(120)]
    (tmp_path / "many.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "many.yaml").write_text(
        "name: many\ntype: classification\ndata: many.jsonl\ninstruction: 'Route: {text}'\n"
        "split: {test_fraction: 0.5, seed: 1, stratify: true}\n", encoding="utf-8")
    task = load_task(tmp_path / "many.yaml")
    assert len(task.test) == 60 and len(task.dev) == 12 and len(task.train) == 48
    assert len({i.gold for i in task.dev}) == 12  # one each from 12 labels
    spec = (tmp_path / "many.yaml").read_text().replace("stratify: true", "stratify: true, dev_fraction: 0")
    (tmp_path / "many.yaml").write_text(spec, encoding="utf-8")
    assert [i.id for i in load_task(tmp_path / "many.yaml").test] == [i.id for i in task.test]


def test_a_variant_is_checked_against_the_task_before_any_call(tickets):
    """More shots than the train split holds, or a placeholder nothing fills, stop the experiment check
    (prepare) naming the option and the task — before any answer is paid."""
    from kit.pipeline.prepare import check_prompts

    too_many = PromptVariant(name="all of them", shots=len(tickets.train) + 1)
    with pytest.raises(TaskError, match=rf"prompt 'all of them' asks for {len(tickets.train) + 1} shots and task "
                                        rf"'tickets' has {len(tickets.train)} train items") as err:
        check_variant(tickets, too_many, where="exp.yaml")
    assert f"shots: {len(tickets.train)} or fewer" in err.value.fix
    check_variant(tickets, PromptVariant(name="ok", shots=len(tickets.train), shot_choice="balanced"), where="x")
    typo = PromptVariant(name="t", instruction="Pick from {lables}: {text}")
    with pytest.raises(TaskError, match=r"prompt 't': `instruction:` has the unknown placeholder \{lables\}") as err:
        check_variant(tickets, typo, where="exp.yaml")
    assert "did you mean {labels}?" in err.value.fix
    exp = Experiment.from_mapping({**BASE, "tasks": {"tickets": None},
                                   "prompts": [{"name": "own"}, {"name": "t", "instruction": "{foo} {text}"}]},
                                  source="exp.yaml")
    with pytest.raises(ConfigError, match=r"task 'tickets': prompt 't': `instruction:` has the unknown placeholder "
                                          r"\{foo\}") as err:
        check_prompts(exp, {"tickets": tickets})
    assert "option 'API'" in err.value.where


# the built-in tasks' test splits, exactly as before the dev split existed (sha256 of the ids in order, computed on
# the code before the change, 35daace): the default report's stored answers depend on them
TEST_IDS = {"snips-intents": "b0b8ee92c36223e06991c7e08def94c49ef3e403b762c5c657a059880efc6fce",
            "hhs-breach-triage": "b335c87df4e86d7444c971d95a78d3f4af895deb5aa58d1d30a046dcac82b831",
            "aclsum-outcomes": "5185258a8a76b388668cab506344ff922fc15b42a6beb8645063478d0d2bb5c2",
            # computed on 1c268f24, before the dev split's sizes were apportioned by largest remainders
            "nace-activities": "a2819b5e406593a0cba08ebb4412b6eaf134335c9565ccf805be2939c9b8dcb9",
            "fine-food-reviews": "51cea924baf605919b7c0e4db03bd0c497b9a1faaac4111b441868e465647cd3"}


@pytest.mark.parametrize("name", list(TEST_IDS))
def test_the_builtin_test_splits_are_unchanged(name):
    task = load_task(name, folder=ROOT / "datasets")
    assert hashlib.sha256("\n".join(i.id for i in task.test).encode()).hexdigest() == TEST_IDS[name]
    assert {i.id for i in task.dev}.isdisjoint({i.id for i in task.train} | {i.id for i in task.test})


# ------------------------------------------------------------------------------------------------ the variants
def test_the_default_variant_is_the_tasks_own_prompt(tickets):
    item = tickets.test[0]
    named = PromptVariant(name="mine")  # every key left out: the task's own prompt, whatever the name
    assert named.is_default and build_request(tickets, item, variant=named) == build_request(tickets, item)
    assert build_request(tickets, item) == build_request(tickets, item, variant=DEFAULT_PROMPT)


def test_balanced_shots_take_each_label_in_turn_from_the_train_split(tickets):
    shots = shots_for(tickets, tickets.test[0], PromptVariant(name="b", shots=5, shot_choice="balanced"))
    assert [s.gold for s in shots] == ["alpha", "beta", "gamma", "alpha", "beta"]
    assert {s.id for s in shots} <= {i.id for i in tickets.train}
    random5 = shots_for(tickets, tickets.test[0], PromptVariant(name="r", shots=5))
    assert len(random5) == 5 and set(tickets.shot_items()) <= set(random5)  # the task's own 2 shots, then more
    assert shots_for(tickets, tickets.test[0], PromptVariant(name="z", shots=0)) == ()


def test_similar_shots_are_the_closest_train_items_the_closest_last(tickets):
    item = tickets.test[0]
    shots = shots_for(tickets, item, PromptVariant(name="s", shots=3, shot_choice="similar"))
    sims = similarity(item.text, tuple(i.text for i in tickets.train))
    ranked = sorted(range(len(tickets.train)), key=lambda j: (-sims[j], j))[:3]
    assert [s.id for s in shots] == [tickets.train[j].id for j in reversed(ranked)]
    assert all(s.gold == item.gold for s in shots)  # the texts name their label: the nearest share it
    other = tickets.test[1]
    assert shots != shots_for(tickets, other, PromptVariant(name="s", shots=3, shot_choice="similar")) or \
        item.gold == other.gold


def test_similarity_is_tf_idf_cosine():
    # reference: scikit-learn's TfidfVectorizer(token_pattern=r"(?u)\w+") (smoothed idf, L2 rows), 1.9.1
    sims = similarity("play a song", ("play some music", "book a table", "play a song now"))
    assert [round(float(s), 4) for s in sims] == [0.2453, 0.2453, 0.8266]


def test_letters_list_the_labels_and_are_read_back_as_labels(tickets):
    letters = PromptVariant(name="L", shots=2, label_style="letters", system=False)
    request = build_request(tickets, tickets.test[0], variant=letters)
    assert request.choices == ("A", "B", "C")
    assert request.messages[0]["role"] == "user"  # no system message
    assert request.messages[-1]["content"].startswith("Route to one of A) alpha; B) beta; C) gamma: ticket number")
    assert request.messages[1]["content"] in ("A", "B", "C")  # a shot's answer is its letter
    assert [parse_answer(tickets, t, letters) for t in ("B", " c)", "(A) alpha", "gamma", "Z", "")] == \
        ["beta", "gamma", "alpha", "gamma", None, None]
    assert parse_answer(tickets, "B", DEFAULT_PROMPT) is None  # names: a letter is no label
    # an instruction that does not list the labels gets the letters' list in a last line
    own = PromptVariant(name="L2", shots=0, label_style="letters", instruction="Route: {text}")
    assert build_request(tickets, tickets.test[0], variant=own).messages[-1]["content"] == \
        f"Route: {tickets.test[0].text}\n\nAnswer with the letter of one of: A) alpha; B) beta; C) gamma."


def test_an_own_instruction_replaces_the_tasks(tickets):
    own = PromptVariant(name="own", shots=0, instruction="Text: {text}\nLabel ({labels})?")
    assert build_request(tickets, tickets.test[0], variant=own).messages[-1]["content"] == \
        f"Text: {tickets.test[0].text}\nLabel (alpha, beta, gamma)?"


def test_a_compact_variant_gives_the_instruction_once_and_each_shot_its_last_paragraph(snips, tickets):
    from kit.tasks.prompts import build_messages, prompt_hash

    item = snips.test[0]
    turns = PromptVariant(name="t", shots=3, shot_choice="similar")
    compact = PromptVariant(name="c", shots=3, shot_choice="similar", shot_format="compact")
    full, short = build_messages(snips, item, turns), build_messages(snips, item, compact)
    users = [m["content"] for m in short if m["role"] == "user"]
    assert len(short) == len(full) == 8 and [m["role"] for m in short] == [m["role"] for m in full]
    assert users[0] == full[1]["content"]  # the first turn is the whole instruction with the first shot
    first_shot = shots_for(snips, item, turns)[0]
    assert users[0].startswith("Classify the request") and users[0].endswith(f"Request: {first_shot.text}")
    assert users[1:] == [f"Request: {s.text}" for s in shots_for(snips, item, turns)[1:]] + [f"Request: {item.text}"]
    assert [m["content"] for m in short if m["role"] == "assistant"] == \
        [m["content"] for m in full if m["role"] == "assistant"]
    assert sum(len(u) for u in users) < sum(len(m["content"]) for m in full if m["role"] == "user") / 2
    assert compact.describe() == "3 similar shots, instruction once"
    # without shots there is nothing to repeat: the zero-shot prompt itself, the same cache key
    zero, zero_compact = PromptVariant(name="z", shots=0), PromptVariant(name="z", shots=0, shot_format="compact")
    assert prompt_hash(build_request(snips, item, variant=zero)) == \
        prompt_hash(build_request(snips, item, variant=zero_compact))
    # an instruction whose first paragraph holds {text} has no lead to give once: refused before any call
    with pytest.raises(TaskError, match="shot_format: turns"):
        check_variant(tickets, PromptVariant(name="c", shot_format="compact"), where="x")


def test_letters_need_a_label_set(hhs):
    with pytest.raises(TaskError, match="letters need a label set, and task 'hhs-breach-triage' is extraction"):
        check_variant(hhs, PromptVariant(name="L", label_style="letters"), where="exp.yaml")


BASE = {"tasks": {"tickets": None}, "reference": "API",
        "options": [{"name": "API", "arm": "openai:fake-api", "runs": "third-party",
                     "price": {"input_per_m": 0.15, "output_per_m": 0.6}}]}


@pytest.mark.parametrize("prompts, message", [
    ([{"name": "a"}, {"name": "a", "shots": 0}], "two prompt variants share the name 'a'"),
    ([{"name": "x", "shot_choice": "best"}], "`prompts.shot_choice:` 'best' is not one of 'random', 'balanced'"),
    ([{"name": "x", "instruction": "no placeholder"}], "prompt 'x': `instruction:` has no {text} placeholder"),
    ([{"name": "x", "shots": -1}], "`prompts.shots:` -1 is out of range (at least 0)"),
    ([{"name": "x", "shots": "5"}], "`prompts.shots:` must be a whole number, got '5'"),
    ([{"name": "x", "label": "letters"}], "unknown keys ['label'] in `prompts:`"),
    ([{"name": ""}], "`prompts.name:` is empty"),
])
def test_bad_variants_are_clear_errors(prompts, message):
    with pytest.raises(ConfigError) as err:
        Experiment.from_mapping({**BASE, "prompts": prompts}, source="exp.yaml")
    assert message in str(err.value) and err.value.where.startswith("exp.yaml") and err.value.fix


def test_an_options_prompts_replace_the_experiments():
    exp = Experiment.from_mapping({**BASE, "prompts": [{"name": "a", "shots": 0}, {"name": "b"}],
                                   "options": [{**BASE["options"][0], "prompts": []}, {
                                       "name": "Local", "arm": "openai:fake", "runs": "self-hosted",
                                       "machine": {"price_per_hour": 0.5}}]}, source="exp.yaml")
    assert exp.option("API").prompts == () and [v.name for v in exp.option("Local").prompts] == ["a", "b"]
    assert Experiment.from_dict(exp.to_dict()) == exp


# --------------------------------------------------------------------------- a real run through the answer stage
def _answer(body) -> str:
    """A fake model that is right only with examples before the item (and answers letters when the prompt
    lists them); zero-shot it always says alpha."""
    messages = body["messages"]
    last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    label = re.search(r"about (\w+) things", last).group(1)
    if not any(m["role"] == "assistant" for m in messages):
        label = "alpha"
    return "ABC"[LABELS.index(label)] if "A) alpha" in last else label


def _api_and_local(base_url: str) -> list[dict]:
    """The API (its own prompt only) and a self-hosted option that chooses among the experiment's variants."""
    return [{"name": "API", "arm": "openai:fake-api", "runs": "third-party", "prompts": [],
             "options": {"base_url": base_url, "logprobs": False, "max_attempts": 1},
             "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
            {"name": "Local", "arm": "openai:fake-local", "runs": "self-hosted",
             "options": {"base_url": base_url, "logprobs": False, "max_attempts": 1},
             "machine": {"price_per_hour": 0.5}}]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    write_task(tmp_path / "datasets")
    monkeypatch.setenv("KIT_PROJECT", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    return tmp_path


def test_test_items_are_asked_with_one_prompt_per_option_chosen_on_dev_items_only(project):
    from servers import OpenAIServer

    from kit.pipeline import answers, prepare

    with OpenAIServer(answer=_answer) as server:
        exp = Experiment.from_mapping({
            "tasks": {"tickets": None}, "reference": "API", "store": str(project / "kit.sqlite"),
            "prompts": [{"name": "0-shot", "shots": 0}, {"name": "4 letters", "shots": 4, "label_style": "letters"},
                        {"name": "4 balanced", "shots": 4, "shot_choice": "balanced"}],
            "options": _api_and_local(server.base_url)}, source="exp.yaml")
        folder = RunFolder(project / "run")
        prepare.prepare_stage(exp, folder)
        answers.answer_stage(folder, progress=False)
        requests = [r["body"] for r in server.requests]

    splits = folder.doc(Doc.SPLITS)["tickets"]
    train, dev, test = (set(splits[k]) for k in ("train", "dev", "test"))
    assert len(test) == 60 and len(dev) == 12 and not (test & dev) and not (test & train) and not (dev & train)

    # the prompts table: every variant scored on the dev items; the tie of the two right ones goes to the shorter
    table = folder.table(Table.PROMPTS, task="tickets").set_index("variant")
    assert list(table.index) == ["0-shot", "4 letters", "4 balanced"] and set(table["option"]) == {"Local"}
    task = load_task("tickets")
    alpha_share = sum(i.gold == "alpha" for i in task.dev) / len(task.dev)
    assert table.loc["0-shot", "dev_quality"] == pytest.approx(alpha_share)
    assert table.loc["4 letters", "dev_quality"] == table.loc["4 balanced", "dev_quality"] == 1.0
    assert table.loc["4 balanced", "prompt_tokens"] < table.loc["4 letters", "prompt_tokens"]
    assert table["chosen"].tolist() == [False, False, True] and (table["dev_items"] == len(dev)).all()
    assert (table["selection_calls"] == len(dev)).all() and (table["selection_usd"] >= 0).all()
    assert {r.option: r.prompt for r in folder.runs()} == {"API": "default", "Local": "4 balanced"}
    local = next(r for r in folder.runs() if r.option == "Local")
    assert set(local.dev_keys) == dev and not set(local.keys) & dev  # the chosen prompt's dev answers, kept apart

    # the store: each option asked each test item with exactly one prompt; the dev answers are filed apart
    with sqlite3.connect(project / "kit.sqlite") as db:
        rows = db.execute("SELECT arm, item_id, kind, COUNT(DISTINCT prompt_hash) FROM responses "
                          "GROUP BY arm, item_id, kind").fetchall()
    on_test = [(arm, n) for arm, item, kind, n in rows if item in test]
    assert sorted({arm for arm, _ in on_test}) == ["openai:fake-api", "openai:fake-local"]
    assert len(on_test) == 2 * len(test) and all(n == 1 for _, n in on_test)
    assert all(kind == "answer" for _, item, kind, _ in rows if item in test)
    assert {item for _, item, kind, n in rows if kind == "dev"} == dev
    assert all(n == 3 for _, item, kind, n in rows if kind == "dev")  # three variants on each dev item

    # every shot shown in any request was a train item
    by_text = {i.text: i.id for i in task.items}
    shown = {by_text[re.search(r"(ticket number \d+ about \w+ things)", m["content"]).group(1)]
             for body in requests for m in body["messages"][:-1] if m["role"] == "user"}
    assert shown and shown <= train

    # the report's block: variants tried, the chosen one's test figure, the optimism, and the sentence
    from kit.pipeline import quality
    from kit.report import views

    quality.quality_stage(folder)
    text = views.prompt_accounting(folder)
    local_test = folder.table(Table.METRICS, task="tickets").set_index("option").loc["Local", "mean_score"]
    assert "48 train, 12 dev and 60 test items, disjoint (checked)" in text
    assert (f"**Local**: 3 variants tried on 12 dev items; chosen '4 balanced' (4 balanced shots), dev 100.0%, "
            f"test {100 * local_test:.1f}%") in text
    assert f"dev − test optimism {100 * (1 - local_test):+.1f} points" in text
    assert "selection calls 36" in text and "no test item was used for selecting a prompt" in text
    assert "$" not in text and "&#36;" in text  # escaped: two dollar signs would open a LaTeX span
    html = views.prompt_sensitivity(folder).to_html()
    assert "4 letters" in html and "prompt tokens / item" in html and "✓" in html


def test_selection_is_skipped_with_a_note_when_the_task_has_no_dev_split(tmp_path, store):
    from servers import OpenAIServer

    from kit.arms import get_arm
    from kit.pipeline.selection import select_prompt

    write_task(tmp_path, n=30)  # too small for a dev split
    task = load_task(tmp_path / "tickets.yaml")
    exp = Experiment.from_mapping({**BASE, "prompts": [{"name": "own"}, {"name": "0-shot", "shots": 0}]},
                                  source="exp.yaml")
    with OpenAIServer(answer=_answer) as server, get_arm("openai:fake-api", base_url=server.base_url, max_attempts=1,
                                                         logprobs=False) as arm:
        pick = select_prompt(task, exp.option("API"), arm, store=store, max_tokens=8)
        assert server.calls() == 0  # nothing asked
    assert pick.chosen.name == "own" and pick.table["chosen"].tolist() == [True, False]
    assert pick.table["note"].iloc[0] == ("not selected: the task has too few non-test items for a dev split (fewer "
                                          "than 10); the first variant answers the test items")


def test_the_prepare_stage_refuses_letters_for_an_extraction_task_naming_the_option(hhs):
    from kit.pipeline.prepare import check_prompts

    exp = Experiment.from_mapping({**BASE, "tasks": {"hhs-breach-triage": 2},
                                   "prompts": [{"name": "own"}, {"name": "L", "label_style": "letters"}]},
                                  source="exp.yaml")
    with pytest.raises(ConfigError) as err:
        check_prompts(exp, {"hhs-breach-triage": hhs})
    assert err.value.where == "exp.yaml: option 'API'"
    assert "task 'hhs-breach-triage': prompt 'L': letters need a label set" in err.value.problem
    assert "label_style: names" in err.value.fix


def test_the_chosen_prompts_dev_answers_fit_the_cascade_threshold(project):
    """When the reference and a self-hosted option both chose their prompt on the dev items, the quality stage
    keeps those dev answers' scores, and the cascade's τ is fitted on them — not on the test items it is measured on."""
    from servers import OpenAIServer

    from kit.cascade import Fit
    from kit.pipeline import answers, costs, prepare, quality

    with OpenAIServer(answer=_answer) as server:
        endpoint = {"base_url": server.base_url, "max_attempts": 1}
        exp = Experiment.from_mapping({
            "tasks": {"tickets": None}, "reference": "API", "store": str(project / "kit.sqlite"),
            "prompts": [{"name": "0-shot", "shots": 0}, {"name": "4 balanced", "shots": 4, "shot_choice": "balanced"}],
            "options": [{"name": "API", "arm": "openai:fake-api", "runs": "third-party", "options": endpoint,
                         "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
                        {"name": "Local", "arm": "openai:fake-local", "runs": "self-hosted", "options": endpoint,
                         "machine": {"price_per_hour": 0.5}}]}, source="exp.yaml")
        folder = RunFolder(project / "run")
        prepare.prepare_stage(exp, folder)
        answers.answer_stage(folder, progress=False)
    quality.quality_stage(folder)
    costs.costs_stage(folder)

    dev = set(folder.doc(Doc.SPLITS)["tickets"]["dev"])
    dev_scores = folder.table(Table.DEV_SCORES, task="tickets")
    assert set(dev_scores["option"]) == {"API", "Local"}
    assert set(dev_scores["item_id"]) == dev and len(dev_scores) == 2 * len(dev)
    choice = folder.doc(Doc.CASCADES, task="tickets")["Local"]
    assert choice["fit"] == Fit.DEV and choice["n_fit"] == len(dev) and choice["n_tested"] == 60


def test_four_variants_are_chosen_by_successive_halving_for_fewer_dev_answers(project):
    """Four variants: every one answers a first slice of the dev items, the better half the next; the pick is the
    one exhaustive selection makes (the shortest prompt among those right on every dev item)."""
    from servers import OpenAIServer

    from kit.pipeline import answers, prepare

    with OpenAIServer(answer=_answer) as server:
        exp = Experiment.from_mapping({
            "tasks": {"tickets": None}, "reference": "API", "store": str(project / "kit.sqlite"),
            "prompts": [{"name": "0-shot", "shots": 0}, {"name": "4 letters", "shots": 4, "label_style": "letters"},
                        {"name": "4 balanced", "shots": 4, "shot_choice": "balanced"},
                        {"name": "2 random", "shots": 2}],
            "options": _api_and_local(server.base_url)}, source="exp.yaml")
        folder = RunFolder(project / "run")
        prepare.prepare_stage(exp, folder)
        answers.answer_stage(folder, progress=False)

    dev = set(folder.doc(Doc.SPLITS)["tickets"]["dev"])
    table = folder.table(Table.PROMPTS, task="tickets").set_index("variant")
    assert table["chosen"].tolist() == [False, False, False, True]  # '2 random': right on every item, shortest
    assert "cut in round 1" in table.loc["0-shot", "note"] and table.loc["0-shot", "dev_items"] < len(dev)
    assert table.loc["2 random", "note"].startswith("chosen after every round")
    with sqlite3.connect(project / "kit.sqlite") as db:
        dev_answers = db.execute("SELECT COUNT(*) FROM responses WHERE kind = 'dev'").fetchone()[0]
    assert dev_answers == table["selection_calls"].sum() < 4 * len(dev)  # fewer than asking every variant
    assert {r.option: r.prompt for r in folder.runs()} == {"API": "default", "Local": "2 random"}


def test_dev_items_spend_a_seeded_sample_of_the_dev_split_and_zero_skips_selection(project):
    """``dev_items: {tickets: 8}``: each variant answers the same 8 of the 12 dev items (a seeded sample, the
    first 8 of one permutation of the dev split); ``0`` skips selection with a note and asks no dev item."""
    from servers import OpenAIServer

    from kit.pipeline import answers, prepare
    from kit.pipeline.selection import dev_sample

    task = load_task(project / "datasets" / "tickets.yaml")
    sample = {i.id for i in dev_sample(task, 8).dev}
    assert len(sample) == 8 and sample <= {i.id for i in task.dev} and len(task.dev) == 12
    for limit, folder_name in ((8, "run8"), (0, "run0")):
        with OpenAIServer(answer=_answer) as server:
            exp = Experiment.from_mapping({
                "tasks": {"tickets": None}, "reference": "API", "store": str(project / f"{folder_name}.sqlite"),
                "dev_items": {"tickets": limit},
                "prompts": [{"name": "0-shot", "shots": 0}, {"name": "4 balanced", "shots": 4,
                                                             "shot_choice": "balanced"}],
                "options": _api_and_local(server.base_url)}, source="exp.yaml")
            folder = RunFolder(project / folder_name)
            prepare.prepare_stage(exp, folder)
            answers.answer_stage(folder, progress=False)
        table = folder.table(Table.PROMPTS, task="tickets").set_index("variant")
        with sqlite3.connect(project / f"{folder_name}.sqlite") as db:
            asked = {r[0] for r in db.execute("SELECT item_id FROM responses WHERE kind = 'dev'")}
        if limit:
            assert table["dev_items"].tolist() == [8, 8] and asked == sample
            assert table.loc["4 balanced", "chosen"]  # right with shots, on the sample too
        else:
            assert table["dev_items"].tolist() == [0, 0] and asked == set()
            assert table["chosen"].tolist() == [True, False]
            assert "no dev items (`dev_items:`)" in table.loc["0-shot", "note"]


def test_dev_items_for_a_task_not_run_are_moot_but_a_misspelt_task_is_an_error():
    with pytest.raises(ConfigError) as err:
        Experiment.from_mapping({**BASE, "dev_items": {"tickest": 10}}, source="exp.yaml")
    assert "`dev_items:` names 'tickest'" in str(err.value) and "did you mean 'tickets'?" in err.value.fix
    assert Experiment.from_mapping({**BASE, "dev_items": 5}, source="exp.yaml").dev_limit("tickets") == 5
    # `-p tasks` running other tasks than the file's: its dev items for the tasks left out are moot
    other = Experiment.from_mapping({**BASE, "tasks": {"snips-intents": 10}, "dev_items": {"tickets": 10}},
                                    source="exp.yaml")
    assert other.dev_limit("snips-intents") is None


def test_a_fine_tune_takes_one_prompt_the_one_it_learns():
    lora = {"name": "LoRA", "finetune": {"base": "smollm2-135m-instruct"}, "machine": {"price_per_hour": 0.5}}
    with pytest.raises(ConfigError) as err:
        Experiment.from_mapping({**BASE, "options": [*BASE["options"], lora],
                                 "prompts": [{"name": "a", "shots": 0}, {"name": "b"}]}, source="exp.yaml")
    assert "the fine-tune 'LoRA' is given several prompt variants" in str(err.value) and "one" in err.value.fix
    exp = Experiment.from_mapping({**BASE, "options": [*BASE["options"], {**lora, "prompts": [
        {"name": "0-shot", "shots": 0}]}]}, source="exp.yaml")
    assert [v.name for v in exp.option("LoRA").prompts] == ["0-shot"]

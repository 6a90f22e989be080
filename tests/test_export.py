"""Export a report's decision: routing.json, the standard-library router over loopback endpoints, its log
replayed into the kit unchanged, and the LiteLLM configuration loaded (and answering) in the real litellm."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request

import pytest
import yaml

from conftest import ROOT
from report_run import build_report_run
from servers import OpenAIServer, last_user

from kit.cli import main
from kit.export import export_decision
from kit.export.router import SLOT, Router, RoutingError, shadowed
from kit.pipeline.folder import Doc, RunFolder



@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A report's run folder made through the real stages (tests/report_run.py): the verdict recommends the
    self-hosted SmolLM2 over the third-party reference API on snips-intents."""
    return build_report_run(tmp_path_factory.mktemp("report"))


@pytest.fixture
def run_folder(built, tmp_path):
    dest = tmp_path / "report-run"
    shutil.copytree(built.path, dest)
    return RunFolder(dest)


def _gold_answer(task):
    """An OpenAI-compatible endpoint's answer: the gold label of the test item whose text is in the prompt."""
    by_text = {i.text: i.gold for i in task.test}

    def answer(body):
        prompt = last_user(body)
        return next((gold for text, gold in by_text.items() if text in prompt), "unknown")

    return answer


def _routed(run_folder):
    return {t: run_folder.doc(Doc.DECISION, task=t) for t in run_folder.tasks()}


def test_export_writes_the_routing_the_verdict_chose(run_folder, tmp_path):
    done = export_decision(run_folder, tmp_path / "deploy", shadow_share=0.25)
    routing = json.loads(done.routing_file.read_text())
    exp = run_folder.experiment()
    decisions = _routed(run_folder)
    assert routing["shadow_share"] == 0.25
    for task, decision in decisions.items():
        if decision["recommended"] is None:
            assert task in routing["unrouted"] and "no option was recommended" in routing["unrouted"][task]
            continue
        route = routing["tasks"][task]
        assert route["option"] == decision["recommended"] and route["fallback"] == exp.reference_name
        assert route["first"] in routing["endpoints"] and exp.reference_name in routing["endpoints"]
        assert any(SLOT in m["content"] for m in route["messages"]) and route["max_tokens"] >= 1
        assert route["expect"]["alpha"] == exp.alpha and route["expect"]["margin"] == exp.margin
        if "⇢" in route["option"]:  # a hybrid: its local option, τ and escalation target
            assert route["tau"] is not None and route["escalate_to"] == exp.reference_name
    assert routing["tasks"]["snips-intents"]["first"] == "SmolLM2", "the verdict recommends the local option"
    assert routing["tasks"]["snips-intents"]["expect"]["agreement"] > 0.8
    for endpoint in routing["endpoints"].values():
        assert endpoint["base_url"].startswith("http") and endpoint["identity"]
    # the router is the kit's module, byte for byte: the standard library only
    assert done.router_file.read_bytes() == (ROOT / "kit" / "export" / "router.py").read_bytes()
    imported = [line for line in done.router_file.read_text().splitlines() if line.startswith(("import", "from"))]
    assert not [line for line in imported if "kit" in line]
    config = yaml.safe_load(done.litellm_file.read_text())
    assert {m["model_name"] for m in config["model_list"]} >= set(routing["tasks"])


def test_litellm_config_loads_in_litellm_and_falls_back_over_loopback(run_folder, tmp_path, monkeypatch, snips):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm's bundled price map, no network
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    import litellm

    task = next(iter(json.loads(export_decision(run_folder, tmp_path / "a").routing_file.read_text())["tasks"]))
    with OpenAIServer(answer=_gold_answer(snips), model="reference-model") as ref:
        exp = run_folder.experiment()
        first = json.loads((tmp_path / "a" / "routing.json").read_text())["tasks"][task]["first"]
        dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port: the chosen deployment fails
        done = export_decision(run_folder, tmp_path / "b", endpoints={first: dead, exp.reference_name: ref.base_url}
                               if first != exp.reference_name else {first: ref.base_url})
        config = yaml.safe_load(done.litellm_file.read_text())
        router = litellm.Router(model_list=config["model_list"], **config["router_settings"])
        assert sorted(m["model_name"] for m in router.model_list) == sorted(m["model_name"] for m in config["model_list"])
        item = snips.test[0]
        reply = router.completion(model=task, messages=[{"role": "user", "content": f"Intent of: {item.text}"}])
        assert reply.choices[0].message.content == item.gold
        assert ref.calls() == 1  # the reference answered: the chosen one was down, the fallback took over


def test_router_answers_through_loopback_and_its_log_replays_unchanged(run_folder, tmp_path, snips, store):
    from kit.arms import get_arm
    from kit.run.runner import run_arm

    exp = run_folder.experiment()
    routing = json.loads(export_decision(run_folder, tmp_path / "probe").routing_file.read_text())
    task = "snips-intents" if "snips-intents" in routing["tasks"] else next(iter(routing["tasks"]))
    first = routing["tasks"][task]["first"]
    with OpenAIServer(answer=_gold_answer(snips), model="local-model") as local, \
            OpenAIServer(answer=lambda body: "get_weather", model="reference-model") as ref:
        done = export_decision(run_folder, tmp_path / "deploy", shadow_share=0.5,
                               endpoints={first: local.base_url, exp.reference_name: ref.base_url})
        router = Router.from_file(done.routing_file)
        items = snips.test[:12]
        records = [router.route(task, i.text, item_id=i.id, at=f"2026-0{1 + n % 2}-15T10:00:00+00:00")
                   for n, i in enumerate(items)]
    assert [r["output"] for r in records] == [i.gold for i in items]
    assert {r["option"] for r in records} == {first} and not any("error" in r for r in records)
    log = done.routing_file.parent / "requests.jsonl"
    shadow = done.routing_file.parent / "shadow.jsonl"
    expected_shadow = [i.id for i in items if shadowed(i.id, 0.5)]
    assert [json.loads(line)["item_id"] for line in shadow.read_text().splitlines()] == expected_shadow
    assert ref.calls() == len(expected_shadow) and local.calls() == len(items)
    # the log is a replay file as it is: the kit reads the router's answers back through the runner and store
    arm = get_arm(f"replay:{log}")
    assert arm.coverage(snips, items=items)["missing"] == []
    summary = run_arm(snips, arm, store=store, items=items)
    assert summary.errors == 0
    stored = store.responses(task=snips.name, arms=[arm.spec]).set_index("item_id")
    assert stored.loc[[i.id for i in items], "answer"].tolist() == [i.gold for i in items]
    assert get_arm(f"replay:{shadow}").coverage(snips, items=items)["answered"] == len(expected_shadow)


def test_hybrid_escalates_below_tau_and_falls_back_on_errors(run_folder, tmp_path, snips):
    exp = run_folder.experiment()
    routing = json.loads(export_decision(run_folder, tmp_path / "d").routing_file.read_text())
    task = next(iter(routing["tasks"]))
    route = routing["tasks"][task]
    with OpenAIServer(answer=_gold_answer(snips), logprob=-2.0) as unsure, \
            OpenAIServer(answer=_gold_answer(snips), model="api") as api:
        # the routing as a hybrid: the local option first, the reference below τ = 0.5 (confidence e^-2 = 0.14)
        routing["tasks"][task] = {**route, "first": "local", "tau": 0.5, "escalate_to": exp.reference_name}
        routing["endpoints"]["local"] = {**routing["endpoints"][route["first"]], "option": "local",
                                         "base_url": unsure.base_url}
        routing["endpoints"][exp.reference_name] = {**routing["endpoints"][exp.reference_name],
                                                     "base_url": api.base_url}
        router = Router(routing, folder=tmp_path / "logs", shadow_share=0.0)
        item = snips.test[0]
        record = router.route(task, item.text, item_id=item.id)
        assert record["route"] == "escalated" and record["option"] == exp.reference_name
        assert record["output"] == item.gold and unsure.calls() == 1 and api.calls() == 1
        routing["endpoints"]["local"]["base_url"] = "http://127.0.0.1:9/v1"  # the local server is down
        routing["tasks"][task]["escalate_to"] = None
        record = Router(routing, folder=tmp_path / "logs").route(task, snips.test[1].text, item_id="x-2")
        assert record["route"] == "fallback" and record["output"] == snips.test[1].gold
    with pytest.raises(RoutingError, match="not routed here"):
        router.route("no-such-task", "hello")


def test_router_serves_http(run_folder, tmp_path, snips):
    exp = run_folder.experiment()
    routing = json.loads(export_decision(run_folder, tmp_path / "p").routing_file.read_text())
    task = next(iter(routing["tasks"]))
    first = routing["tasks"][task]["first"]
    with OpenAIServer(answer=_gold_answer(snips)) as srv:
        done = export_decision(run_folder, tmp_path / "s", shadow_share=0.0,
                               endpoints={first: srv.base_url, exp.reference_name: srv.base_url})
        server = Router.from_file(done.routing_file).serve(port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            item = snips.test[3]
            url = f"http://127.0.0.1:{server.server_address[1]}/route"
            body = json.dumps({"task": task, "text": item.text, "id": item.id}).encode()
            with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as resp:
                record = json.loads(resp.read())
        finally:
            server.shutdown()
            server.server_close()
    assert record["output"] == item.gold and record["item_id"] == item.id


def test_export_says_what_to_fix(run_folder, tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "not a report's run folder" in capsys.readouterr().err
    assert main(["export", str(run_folder.path), "--endpoint", "Nobody=http://x/v1", "-o", str(tmp_path / "o")]) == 2
    assert "names no option" in capsys.readouterr().err
    assert main(["export", str(run_folder.path), "--shadow-share", "2", "-o", str(tmp_path / "o")]) == 2
    assert "not a share" in capsys.readouterr().err
    assert main(["export", str(run_folder.path), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "routing.json" in out and "kit monitor" in out


def test_local_models_are_served_by_llama_cpp_and_the_standin_is_named():
    from kit.experiment import EXAMPLE, Experiment
    from kit.export.routing import _SERVING
    from kit.models import resolve_model

    exp = Experiment.from_mapping(yaml.safe_load(EXAMPLE), source="example").resolved()
    local = _SERVING["lora"](exp.option("SmolLM2"), "lora:smollm2-135m-instruct+runs/adapters/a.gguf", {}, 8082)
    assert str(resolve_model("smollm2-135m-instruct").path) in local.serve and "--lora_path" in local.serve
    assert "--logits_all true" in local.serve and local.base_url == "http://127.0.0.1:8082/v1"
    assert local.structured == "json_object" and not local.third_party
    standin = _SERVING["openai"](exp.option("API"), "openai:gemma-3-270m", {}, 8083)
    assert standin.serve == "kit serve --model gemma-3-270m --port 8083" and "stand-in" in standin.note

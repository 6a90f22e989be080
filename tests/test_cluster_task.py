"""A task that declares `cluster:` end to end: load → scores → compare, floor, pairs, agreement, metrics.

The answers table is written by hand (no model runs): the reference is right on most items, the candidate
is wrong on whole customers at a time, so clustering must widen what the item-level statistics say. The
clustered numbers are checked against statsmodels' cluster-robust OLS on an intercept
(``OLS(y, ones).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.regression.linear_model import OLS

from kit.columns import Col
from kit.errors import TaskError
from kit.pipeline.quality import _metrics, _pairs
from kit.pipeline.scores import floor_table
from kit.tasks import load_task
from kit.tasks.compare import compare_options
from kit.tasks.scoring import score_task

N_CUSTOMERS, PER_CUSTOMER = 10, 6
BAD_CUSTOMERS = {2, 5}  # the candidate answers these customers' tickets wrongly, all of them


def _write(tmp_path, *, cluster_line: str = "cluster: customer", rows: list[str] | None = None):
    labels = ["bug", "billing"]
    if rows is None:
        rows = [f"t{c}-{k},ticket {k} of customer {c},{labels[(c + k) % 2]},cust{c}"
                for c in range(N_CUSTOMERS) for k in range(PER_CUSTOMER)]
    (tmp_path / "t.csv").write_text("id,text,label,customer\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "t.yaml").write_text(
        "name: tickets\ntype: classification\ndata: t.csv\ninstruction: 'Route: {text}'\nlabels: [bug, billing]\n"
        f"split: {{test_fraction: 1.0}}\n{cluster_line}\n", encoding="utf-8")
    return tmp_path / "t.yaml"


def _answers(task) -> pd.DataFrame:
    rows = []
    for item in task.test:
        customer, k = (int(part) for part in item.id.removeprefix("t").split("-"))
        right = ["bug", "billing"][(customer + k) % 2]  # as _write labels it (also when loaded without labels)
        wrong = "billing" if right == "bug" else "bug"
        for option, answer in (("api", right), ("local", wrong if customer in BAD_CUSTOMERS else right)):
            rows.append({Col.OPTION: option, Col.ITEM_ID: item.id, Col.EPOCH: 0, Col.ANSWER: answer, Col.ERROR: None,
                         Col.PARSE_ERROR: False, Col.LATENCY_S: 0.1 + 0.01 * customer, Col.TTFT_S: None,
                         Col.PROMPT_TOKENS: 10, Col.COMPLETION_TOKENS: 2, Col.CONFIDENCE: None})
    return pd.DataFrame(rows)


def _reference(values: np.ndarray, groups: np.ndarray):
    return OLS(values, np.ones((values.size, 1))).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)


def test_cluster_column_reaches_items_and_scores(tmp_path):
    task = load_task(_write(tmp_path))
    assert {i.cluster for i in task.items} == {f"cust{c}" for c in range(N_CUSTOMERS)}
    scores = score_task(task, _answers(task), reference="api")
    assert scores[Col.CLUSTER].notna().all() and scores[Col.CLUSTER].nunique() == N_CUSTOMERS
    plain = load_task(_write(tmp_path, cluster_line=""))
    assert all(i.cluster is None for i in plain.items)
    assert Col.CLUSTER not in score_task(plain, _answers(task), reference="api").columns


def test_clustered_task_end_to_end_compare_metrics_floor_pairs_agreement(tmp_path):
    task = load_task(_write(tmp_path))
    scores = score_task(task, _answers(task), reference="api")
    table = compare_options(task, scores, reference="api", margin=0.05, n_resamples=1000).iloc[0]
    local = scores[scores[Col.OPTION] == "local"].set_index(Col.ITEM_ID)
    api = scores[scores[Col.OPTION] == "api"].set_index(Col.ITEM_ID).loc[local.index]
    d = local[Col.CORRECT].astype(float).to_numpy() - api[Col.CORRECT].astype(float).to_numpy()
    groups = local[Col.CLUSTER].to_numpy()
    fit = _reference(d, groups)
    assert table[Col.N_CLUSTERS] == N_CUSTOMERS and table[Col.DIFFERENCE] == pytest.approx(-12 / 60)
    assert table[Col.DIFF_CI_LOW] <= fit.conf_int(alpha=0.05)[0][0] + 1e-12
    assert table[Col.LOWER_BOUND] <= fit.conf_int(alpha=0.10)[0][0] + 1e-12
    assert "10 clusters" in table[Col.STATEMENT]
    metrics = _metrics(task, scores, task.type.baselines(task.train, task.test)).set_index(Col.OPTION)
    assert metrics.loc["local", Col.N_CLUSTERS] == N_CUSTOMERS
    acc = local[Col.CORRECT].astype(float).to_numpy()
    assert metrics.loc["local", Col.ACCURACY_CI_LOW] <= _reference(acc, groups).conf_int(alpha=0.05)[0][0] + 1e-12
    floor = floor_table(task, scores, 0.05)
    assert floor[Col.N_CLUSTERS].eq(N_CUSTOMERS).all() and floor[Col.METHOD].str.contains("cluster-robust").all()
    pairs = _pairs(scores, 0.05).iloc[0]
    assert pairs[Col.N_CLUSTERS] == N_CUSTOMERS
    assert pairs[Col.P_VALUE] >= np.asarray(fit.t_test("const = 0").pvalue).item() - 1e-12
    agreement = task.type.agreement(scores, reference="api").iloc[0]
    assert agreement[Col.N_CLUSTERS] == N_CUSTOMERS


def test_clustering_changes_the_verdict_the_item_level_test_would_give(tmp_path):
    """Twelve wrong answers on two customers are weak evidence: the item-level test calls the difference real,
    the clustered one does not (two of ten customers)."""
    task = load_task(_write(tmp_path))
    scores = score_task(task, _answers(task), reference="api")
    clustered = _pairs(scores, 0.05).iloc[0]
    item_level = _pairs(scores.drop(columns=Col.CLUSTER), 0.05).iloc[0]
    assert item_level[Col.SIGNIFICANT] and not clustered[Col.SIGNIFICANT]


def test_unlabelled_clustered_task_compares_agreement_with_clusters(tmp_path):
    task = load_task(_write(tmp_path), ignore_labels=True)
    scores = score_task(task, _answers(task), reference="api")
    table = compare_options(task, scores, reference="api", agreement_target=0.7).iloc[0]
    assert table[Col.KIND] == "agreement" and table[Col.N_CLUSTERS] == N_CUSTOMERS
    plain = compare_options(task, scores.drop(columns=Col.CLUSTER), reference="api", agreement_target=0.7).iloc[0]
    assert table[Col.AGREEMENT_LOWER_BOUND] < plain[Col.AGREEMENT_LOWER_BOUND]


def test_unknown_cluster_column_names_the_columns_present(tmp_path):
    with pytest.raises(TaskError, match=r"names no column.*\['customer', 'id', 'label', 'text'\]") as err:
        load_task(_write(tmp_path, cluster_line="cluster: custmer"))
    assert "did you mean 'customer'" in err.value.fix


def test_empty_cluster_cell_names_the_row(tmp_path):
    rows = ["a1,first,bug,c1", "a2,second,billing,", "a3,third,bug,c2"]
    with pytest.raises(TaskError, match="id 'a2' has an empty cluster") as err:
        load_task(_write(tmp_path, rows=rows))
    assert str(err.value.where).endswith("t.csv:3")


def test_one_cluster_is_refused_at_load_before_any_answer(tmp_path):
    """Issue 26 case 2: one distinct value used to load, and the quality stage failed after every answer was
    paid; now loading stops, naming the value — for the whole data file, and for a test split of one cluster."""
    rows = [f"t{k},ticket {k},{['bug', 'billing'][k % 2]},acme" for k in range(20)]
    with pytest.raises(TaskError, match=r"all 20 items are in one cluster \('acme'\)") as err:
        load_task(_write(tmp_path, rows=rows))
    assert "drop `cluster:`" in err.value.fix and str(err.value.where).endswith("t.yaml")
    two = rows[:19] + ["t19,ticket 19,billing,other"]  # two clusters, but the test split (first 10) has one
    (tmp_path / "t.csv").write_text("id,text,label,customer\n" + "\n".join(two) + "\n", encoding="utf-8")
    spec = (tmp_path / "t.yaml").read_text().replace("test_fraction: 1.0", "test_fraction: 0.5, seed: 3")
    (tmp_path / "t.yaml").write_text(spec, encoding="utf-8")
    with pytest.raises(TaskError, match=r"all 10 test items are in one cluster \('acme'\)"):
        load_task(tmp_path / "t.yaml")


def test_cluster_key_must_name_a_column(tmp_path):
    with pytest.raises(TaskError, match="must name a data column") as err:
        load_task(_write(tmp_path, cluster_line="cluster: [customer]"))
    assert str(err.value.where).endswith("t.yaml")


def test_report_stages_on_a_clustered_task_show_clusters_and_the_method(tmp_path, monkeypatch):
    """The whole quality stage on replayed outputs of a task with `cluster:` (as tests/test_report_stages.py runs
    it), then the report's views: every table carries the clusters, and the report says so."""
    import json

    from kit.experiment import Experiment
    from kit.pipeline import answers, costs, prepare, quality, verdict
    from kit.pipeline.folder import RunFolder, Table
    from kit.report import views

    rng = np.random.default_rng(3)
    n = 120
    gold = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.2, 0.2])
    (tmp_path / "datasets").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    rows = [{"id": f"t{i}", "text": f"ticket number {i}", "label": g, "customer": f"cust{i // 6}"}
            for i, g in enumerate(gold)]
    (tmp_path / "datasets" / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "datasets" / "tickets.yaml").write_text(
        "name: tickets\ntype: classification\ndata: tickets.jsonl\nlabels: [a, b, c]\ncluster: customer\n"
        "instruction: 'Route: {text}'\nsplit: {test_fraction: 0.5, seed: 1}\n")
    monkeypatch.setenv("KIT_PROJECT", str(tmp_path))

    def replay(name, right):
        out = [{"item_id": f"t{i}", "output": g if rng.random() < right else [x for x in "abc" if x != g][i % 2],
                "latency_s": float(rng.gamma(4, 0.1)), "prompt_tokens": 40, "completion_tokens": 2}
               for i, g in enumerate(gold)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
        return str(tmp_path / f"{name}.jsonl")

    exp = Experiment.from_mapping({
        "tasks": {"tickets": None}, "reference": "API",
        "options": [{"name": "API", "arm": f"replay:{replay('api', 0.8)}", "runs": "third-party",
                     "price": {"input_per_m": 0.15, "output_per_m": 0.6}},
                    {"name": "Local", "arm": f"replay:{replay('local', 0.85)}", "runs": "self-hosted",
                     "machine": "box"}],
        "machines": {"box": {"price_per_hour": 0.5, "utilisation": 0.6, "ops_hours_per_month": 2}},
        "monthly_volume": 50000, "store": str(tmp_path / "kit.sqlite")}, source="test.yaml")
    folder = RunFolder(tmp_path / "run")
    prepare.prepare_stage(exp, folder)
    answers.answer_stage(folder, progress=False)
    quality.quality_stage(folder)
    costs.costs_stage(folder)
    verdict.verdict_stage(folder)

    scores = folder.table(Table.SCORES, task="tickets")
    g = scores[Col.CLUSTER].nunique()
    assert 10 <= g <= 20  # the test half of 20 customers' tickets
    for kind in (Table.COMPARE, Table.PAIRS, Table.LATENCY, Table.FLOOR, Table.AGREEMENT):
        assert folder.table(kind, task="tickets")[Col.N_CLUSTERS].eq(g).all(), kind
    metrics = folder.table(Table.METRICS, task="tickets")
    assert metrics.loc[metrics[Col.KIND] == "option", Col.N_CLUSTERS].eq(g).all()
    html = views.quality(folder).to_html() + views.comparison(folder).to_html() + views.latency(folder).to_html()
    assert html.count(f"60 in {g} clusters") == 3  # both options' quality, the candidate's comparison
    assert html.count(f"59 in {g} clusters") == 2  # latency: each run's first (warm-up) call is reported apart
    assert "Clustered items" in views.caveats(folder) and f"tickets ({g} clusters)" in views.caveats(folder)
    assert "nan" not in html.lower().replace("nanos", "")


def test_a_partly_labelled_clustered_task_gets_cluster_robust_ppi_intervals(tmp_path):
    """PPI++ on a task with `cluster:` uses the cluster-robust variances (``ppi_mean(..., clusters=...)``), so the
    labelled sample's interval accounts for customers answered wrongly as a whole."""
    from kit.stats import ppi_mean
    from kit.tasks.ppi_compare import SampledLabels, ppi_metrics

    task = load_task(_write(tmp_path), ignore_labels=True)
    labelled_task = load_task(_write(tmp_path))
    scores = score_task(task, _answers(labelled_task), reference="api")
    ids = [i.id for i in task.test]
    order = tuple(ids[::2])  # every second ticket: each customer has labelled and unlabelled ones
    gold = {i.id: i.gold for i in labelled_task.test if i.id in order}
    labels = SampledLabels(order=order, gold=gold, outside=0, population=len(ids), seed=0)
    metrics = _metrics(task, scores, [])
    row = ppi_metrics(task, scores, labels, metrics, reference="api").set_index(Col.OPTION).loc["local"]

    local = scores[scores[Col.OPTION] == "local"].set_index(Col.ITEM_ID).loc[ids]
    lab = np.array([i in gold for i in ids])
    right = np.array([local.loc[i, Col.ANSWER] == gold[i] for i in np.asarray(ids)[lab]], dtype=float)
    agree = local[Col.CORRECT].astype(float).to_numpy()
    customers = np.array([i.split("-")[0] for i in ids])
    clustered = ppi_mean(right, agree[lab], agree[~lab], clusters=(customers[lab], customers[~lab])).iloc[0]
    plain = ppi_mean(right, agree[lab], agree[~lab]).iloc[0]
    assert row[Col.STD_ERROR] == pytest.approx(clustered[Col.STD_ERROR])
    assert clustered[Col.STD_ERROR] > plain[Col.STD_ERROR]  # whole customers wrong: clustering widens

"""The labelling form, used as a user does: a real kernel runs notebooks/label.ipynb, and this test plays the
browser — it reads the widgets' state from their ``comm_open``/``comm_msg`` messages on iopub and clicks
buttons by sending ``comm_msg`` (ipywidgets' widget messaging protocol, version 2) on the shell channel.

Done when (issue 19): 20 items labelled through the notebook form and the same 20 through a CSV round-trip
(export → edit → import into a fresh store) give the same stored labels.
"""

from __future__ import annotations

import csv
import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import ROOT

LABELS = ("billing", "bug", "other")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _support_task(folder: Path, n: int = 60) -> tuple[Path, dict[str, str]]:
    """A classification task without gold answers, and the answer key the labeller has in mind (text -> label)."""
    key = {f"ticket {i}: {['my card was charged twice', 'the app crashes on start', 'where is my order'][i % 3]}"
           f" (case {i * 7 % 61})": LABELS[i % 3] for i in range(n)}
    rows = [{"id": f"t{i}", "text": text} for i, text in enumerate(key)]
    (folder / "support.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = folder / "support.yaml"
    path.write_text("name: support\ntype: classification\ndata: support.jsonl\nlabels: [billing, bug, other]\n"
                    "instruction: 'Route this ticket: {text}'\nsplit: {test_fraction: 0.5, seed: 3}\n",
                    encoding="utf-8")
    return path, key


class Browser:
    """What JupyterLab does with a kernel's widgets: keep each model's state from iopub, send the user's
    actions as comm messages on the shell channel, and wait until the kernel has handled each one."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.models: dict[str, dict[str, Any]] = {}
        self.shown: list[str] = []  # model ids of the widgets displayed as outputs

    def _drain(self, msg_id: str, timeout: float = 60.0) -> None:
        """Read iopub until the kernel is idle after ``msg_id``; fail on an error output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the kernel did not finish {msg_id} in {timeout} s") from None
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
                self.models[content["comm_id"]] = dict(content["data"]["state"])
            elif kind == "comm_msg" and content["data"].get("method") in ("update", "echo_update"):
                self.models.setdefault(content["comm_id"], {}).update(content["data"]["state"])
            elif kind in ("display_data", "execute_result") and WIDGET_VIEW in content["data"]:
                self.shown.append(content["data"][WIDGET_VIEW]["model_id"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "stream" and content["name"] == "stderr" and "Traceback" in content["text"]:
                raise AssertionError(content["text"])
            if (kind == "status" and content["execution_state"] == "idle"
                    and msg["parent_header"].get("msg_id") == msg_id):
                return

    def execute(self, code: str) -> None:
        self._drain(self.client.execute(code))

    def send(self, comm_id: str, data: dict[str, Any]) -> None:
        msg = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.client.shell_channel.send(msg)
        self._drain(msg["header"]["msg_id"])

    def click(self, comm_id: str) -> None:
        assert not self.models[comm_id].get("disabled"), f"{self.models[comm_id]['description']} is disabled"
        self.send(comm_id, {"method": "custom", "content": {"event": "click"}})

    def children(self, comm_id: str) -> list[str]:
        return [ref.removeprefix("IPY_MODEL_") for ref in self.models[comm_id]["children"]]

    def value(self, comm_id: str) -> str:
        return str(self.models[comm_id]["value"])


def _run_notebook(browser: Browser, **parameters: Any) -> None:
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / "label.ipynb")), parameters)
    for cell in nb.cells:
        if cell.cell_type == "code":
            browser.execute(cell.source)


def _kit(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "kit.cli", "label", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_twenty_items_labelled_in_the_form_and_through_a_csv_give_the_same_labels(tmp_path):
    from jupyter_client.manager import KernelManager

    from kit.labels import LabelBook, sampled_labels
    from kit.run.store import Store
    from kit.tasks import load_task

    task_file, key = _support_task(tmp_path)
    task = load_task(task_file)
    by_id = {item.id: key[item.text] for item in task.items}
    form_store = tmp_path / "form.sqlite"
    with Store(form_store) as store:  # the API's logged answers: the form shows them once an item is labelled
        for item in task.test:
            store.write(f"k-{item.id}", {"run_id": "logs", "task": "support", "item_id": item.id, "arm": "openai:api",
                                         "model_identity": "api", "params": {}, "prompt_hash": "p", "epoch": 0,
                                         "answer": "bug", "kind": "answer"})

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        browser = Browser(client)
        _run_notebook(browser, task=str(task_file), store=str(form_store), who="ana", size=20)
        (form,) = browser.shown
        header, text, buttons, actions, progress, settle, answers, message = browser.children(form)
        assert browser.value(settle) == ""  # no experiment: no question to settle, the sample is labelled in full
        by_label = {browser.models[b]["description"]: b for b in browser.children(buttons)}
        skip, undo = browser.children(actions)
        assert tuple(by_label) == LABELS
        assert browser.value(progress) == "0 / 20 labelled"

        def shown_label() -> str:  # what the labeller decides, reading the item's text in the form
            return next(label for t, label in key.items() if f">{t}<" in browser.value(text))

        # a slip, taken back: a wrong label, then Undo shows the same item again
        first = browser.value(text)
        browser.click(by_label[next(label for label in LABELS if label != shown_label())])
        assert browser.value(progress) == "1 / 20 labelled" and browser.value(text) != first
        browser.click(undo)
        assert browser.value(text) == first and browser.value(progress) == "0 / 20 labelled"
        # a skip, taken back too
        browser.click(skip)
        assert browser.value(progress) == "0 / 20 labelled, 1 skipped"
        browser.click(undo)
        assert browser.value(text) == first
        for n in range(1, 21):
            item_id = browser.value(header).split("<code>")[1].split("</code>")[0]
            assert f"{item_id} labelled" not in browser.value(answers)  # its answers come after the label
            browser.click(by_label[shown_label()])
            assert browser.value(progress) == f"{n} / 20 labelled"
            assert browser.value(answers) == (f"{item_id} labelled <b>{by_id[item_id]}</b>; the options answered: "
                                              "openai:api → <b>bug</b>")
        assert browser.value(message) == ""
        assert "Every item of the sample is labelled" in browser.value(header)
        assert all(browser.models[b]["disabled"] for b in [*by_label.values(), skip])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    with Store(form_store) as store:
        from_form = sampled_labels(store, task)
        history = LabelBook(store, task).history()
    assert len(from_form.order) == 20 and dict(from_form.gold) == {i: by_id[i] for i in from_form.order}
    assert [(row.who, str(row.source)) for row in history][0] == ("ana", "form")
    assert sum(row.undone_at is not None for row in history) == 2 and len(history) == 22

    # the same 20 through a file: export the sample, fill in its label column, import it into a fresh store
    exported = _kit(str(task_file), "--store", str(tmp_path / "export.sqlite"), "--size", "20", "--export",
                    str(tmp_path / "sample.csv"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    with open(tmp_path / "sample.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == list(from_form.order) and {r["label"] for r in rows} == {""}
    for row in rows:
        row["label"] = key[row["text"]]
    with open(tmp_path / "sample.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    imported = _kit(str(task_file), "--store", str(tmp_path / "fresh.sqlite"), "--size", "20", "--import",
                    str(tmp_path / "sample.csv"), "--who", "ana", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "20 labels added, 0 unchanged" in imported.stdout
    with Store(tmp_path / "fresh.sqlite") as store:
        from_file = sampled_labels(store, task)
        stored = {(row.item_id, row.label, row.who) for row in LabelBook(store, task).current().values()}
    assert from_file == from_form
    assert stored == {(i, by_id[i], "ana") for i in from_form.order}

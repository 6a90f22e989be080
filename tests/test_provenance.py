"""The run record: written once by the prepare stage (a declared artefact), versioned, read by the report."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata

import pytest

from kit.errors import KitError
from kit.models.hardware import PACKAGES
from kit.pipeline import answers, prepare
from kit.pipeline.folder import Doc, RunFolder
from kit.pipeline.provenance import RECORD_VERSION, git_revision, read_provenance
from kit.report import views
from test_report_stages import experiment, project  # noqa: F401  (the fixture: a three-label task, four replays)


def _prepared(tmp_path, files) -> RunFolder:
    folder = RunFolder(tmp_path / "run")
    prepare.prepare_stage(experiment(tmp_path, files), folder)
    return folder


def test_the_prepare_stage_writes_the_run_record_it_declares(project):
    tmp_path, files = project
    assert Doc.PROVENANCE in prepare.PREPARE.writes
    folder = _prepared(tmp_path, files)
    data = json.loads((folder.path / "provenance.json").read_text())
    assert data["version"] == RECORD_VERSION == 1
    record = read_provenance(folder)
    assert record.experiment == "test.yaml" and len(record.experiment_sha256) == 64
    assert set(record.packages) == set(PACKAGES) and record.packages["pandas"] == metadata.version("pandas")
    # the project here is a plain folder, not a git checkout: the revision says so rather than guessing
    assert record.revision == "unknown"


def test_the_report_shows_the_record_written_at_prepare_time_not_what_is_installed_now(project):
    tmp_path, files = project
    folder = _prepared(tmp_path, files)
    answers.answer_stage(folder, progress=False)
    path = folder.path / "provenance.json"
    data = json.loads(path.read_text())
    # as if the run had been prepared with other versions installed: the report must show those
    data.update(kit_version="0.0.1-prepared", revision="abc123 (with local changes)",
                packages={**data["packages"], "numpy": "1.0.prepared"})
    path.write_text(json.dumps(data))
    shown = dict(views.manifest(folder).data.values.tolist())
    assert shown["kit version"] == "0.0.1-prepared" and shown["git commit"] == "abc123 (with local changes)"
    assert shown["package numpy"] == "1.0.prepared" and shown["run record version"] == "1"


def test_a_record_of_a_newer_version_is_a_clear_error(project):
    tmp_path, files = project
    folder = _prepared(tmp_path, files)
    path = folder.path / "provenance.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": RECORD_VERSION + 1, "new_key": 1}))
    with pytest.raises(KitError, match=r"the run record is version 2; this kit reads versions up to 1") as err:
        read_provenance(folder)
    assert "newer kit" in err.value.fix
    path.write_text(json.dumps({"created": "x"}))
    with pytest.raises(KitError, match="the run record has no version"):
        read_provenance(folder)


def test_the_revision_is_the_commit_checked_out_and_marks_local_changes(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f.txt").write_text("one\n")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_revision(tmp_path) == head
    (tmp_path / "f.txt").write_text("two\n")
    assert git_revision(tmp_path) == f"{head} (with local changes)"

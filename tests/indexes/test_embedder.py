from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

import citeline.indexes._embedder as embedder_module
import citeline.indexes._export as export_module
from citeline.indexes import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_BACKENDS,
    CitelineSettings,
    Embedder,
    EmbedderUnavailableError,
    EmbeddingBackend,
    HashEmbedder,
    OpenVINOEmbedder,
    PageRecord,
    PassageIndex,
    PassageRecord,
    SentenceTransformerEmbedder,
    load_embedder,
    openvino_export_dir,
    prepare_openvino_embedder,
)

_REAL: dict[str, SentenceTransformerEmbedder | OpenVINOEmbedder] = {}


def real(backend: EmbeddingBackend) -> SentenceTransformerEmbedder | OpenVINOEmbedder:
    """One real embedder per backend for the whole run, exported (once per machine) under the
    configured models directory, as the service would use it."""
    if backend not in _REAL:
        _REAL[backend] = load_embedder(CitelineSettings(), backend=backend)
    return _REAL[backend]


EMBEDDERS: list[Any] = [
    pytest.param(lambda: HashEmbedder(16), id="hash-16"),
    pytest.param(lambda: HashEmbedder(64), id="hash-64"),
    *(pytest.param(lambda b=b: real(b), id=b, marks=pytest.mark.e2e) for b in EMBEDDING_BACKENDS),
]


@pytest.mark.parametrize("make", EMBEDDERS)
def test_embedder_contract(make: Callable[[], Embedder]) -> None:
    embedder = make()
    vectors = embedder.embed(["read a json file", "write rows to csv", ""])
    assert vectors.shape == (3, embedder.dimension)
    assert vectors.dtype == np.float32
    norms = np.linalg.norm(vectors[:2], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    again = embedder.embed(["read a json file"])
    # Batch composition changes float rounding in real models: equal to 1e-5, not bit for bit.
    assert np.allclose(again[0], vectors[0], atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_hash_embedder_puts_shared_words_closer() -> None:
    embedder = HashEmbedder(64)
    query, near, far = embedder.embed(["json file load", "load the json file", "rows of a csv table"])
    assert float(query @ near) > float(query @ far)


@pytest.mark.e2e
@pytest.mark.parametrize("backend", EMBEDDING_BACKENDS)
def test_real_embedders_rank_by_meaning(backend: EmbeddingBackend) -> None:
    embedder = real(backend)
    assert embedder.dimension == 384
    query, near, far = embedder.embed(
        ["How do I parse JSON?", "json.loads() deserializes a JSON document", "The tide rises twice a day"]
    )
    assert float(query @ near) > float(query @ far) + 0.2
    assert "file" in embedder.vocabulary()
    assert embedder.max_tokens == 256


@pytest.mark.e2e
def test_openvino_fp32_vectors_match_torch_and_int8_is_named_apart() -> None:
    texts = ["json.loads() deserializes a JSON document", "Use a list comprehension to build lists", "x"]
    torch_vectors = real("torch").embed(texts)
    assert np.abs(real("openvino").embed(texts) - torch_vectors).max() < 1e-5
    assert real("openvino").model_name == real("torch").model_name == DEFAULT_EMBEDDING_MODEL
    assert real("openvino-int8").model_name == f"{DEFAULT_EMBEDDING_MODEL}-int8"
    assert np.sum(real("openvino-int8").embed(texts) * torch_vectors, axis=1).min() > 0.95


@pytest.mark.e2e
def test_index_built_with_torch_is_searchable_with_the_default_backend(tmp_path: Path) -> None:
    torch_embedder = real("torch")
    texts = {
        "https://d.example/json": "json.loads() deserializes a JSON document into Python objects.",
        "https://d.example/csv": "csv.writer returns an object that writes rows of a spreadsheet.",
        "https://d.example/tide": "The tide rises and falls twice a day along the coast.",
    }
    index = PassageIndex.create_or_open(
        tmp_path, "docs", embedding_model=torch_embedder.model_name, dimension=torch_embedder.dimension
    )
    for url, text in texts.items():
        page = PageRecord(url=url, title=url, text=text, content_hash=str(hash(text)))
        index.upsert_page(page, [PassageRecord(0, len(text), text)], torch_embedder.embed([text]))
    index.flush()
    index.close()

    default = load_embedder(CitelineSettings())
    assert CitelineSettings().embedding_backend == "openvino"
    reopened = PassageIndex.open(tmp_path, "docs")
    reopened.check_embedder(default.model_name, default.dimension)  # raises EmbedderMismatchError if not
    query = "How do I parse JSON?"
    hits = reopened.search(default.embed([query])[0], k=3)
    torch_hits = reopened.search(torch_embedder.embed([query])[0], k=3)
    assert hits[0].url == "https://d.example/json"
    assert [h.url for h in hits] == [h.url for h in torch_hits]
    assert [h.score for h in hits] == pytest.approx([h.score for h in torch_hits], abs=1e-5)
    reopened.close()


# -- the factory and the export cache, with the model conversion faked -----------------------


class _FakeModel:
    max_seq_length = 128
    dimension = 8  # what OpenVINOEmbedder reads from its runner

    def get_embedding_dimension(self) -> int:
        return 8


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace loading and conversion: records what was loaded, writes a stand-in IR."""
    loaded: list[str] = []

    def load(self: Any, name: str, device: str) -> _FakeModel:
        loaded.append(type(self).__name__)
        return _FakeModel()

    monkeypatch.setattr(SentenceTransformerEmbedder, "_load", load)
    monkeypatch.setattr(OpenVINOEmbedder, "_load", load)
    return loaded


@pytest.mark.parametrize(
    ("backend", "cls", "model_name"),
    [
        ("torch", SentenceTransformerEmbedder, DEFAULT_EMBEDDING_MODEL),
        ("openvino", OpenVINOEmbedder, DEFAULT_EMBEDDING_MODEL),
        ("openvino-int8", OpenVINOEmbedder, f"{DEFAULT_EMBEDDING_MODEL}-int8"),
    ],
)
def test_load_embedder_picks_the_backend(
    fake_models: list[str], tmp_path: Path, backend: EmbeddingBackend, cls: type, model_name: str
) -> None:
    embedder = load_embedder(CitelineSettings(models_dir=tmp_path, embedding_backend=backend))
    assert type(embedder) is cls
    assert embedder.model_name == model_name
    assert embedder.dimension == 8
    assert fake_models == [cls.__name__]


def test_load_embedder_backend_argument_overrides_settings(fake_models: list[str], tmp_path: Path) -> None:
    embedder = load_embedder(CitelineSettings(models_dir=tmp_path, embedding_backend="torch"), backend="openvino")
    assert isinstance(embedder, OpenVINOEmbedder)
    with pytest.raises(EmbedderUnavailableError, match="unknown embedding backend"):
        load_embedder(CitelineSettings(models_dir=tmp_path), backend="onnx")  # type: ignore[arg-type]


def test_backend_setting_defaults_to_openvino_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITELINE_CONFIG", "/nonexistent")
    monkeypatch.delenv("CITELINE_EMBEDDING_BACKEND", raising=False)
    assert CitelineSettings().embedding_backend == "openvino"
    monkeypatch.setenv("CITELINE_EMBEDDING_BACKEND", "torch")
    assert CitelineSettings().embedding_backend == "torch"
    monkeypatch.setenv("CITELINE_EMBEDDING_BACKEND", "onnx")
    with pytest.raises(pydantic.ValidationError):
        CitelineSettings()


@pytest.fixture
def fake_export(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the real conversion (seconds of work) by one that writes a stand-in IR slowly."""
    calls: list[Path] = []

    def export(source: Path, destination: Path) -> None:
        calls.append(destination)
        (destination / "openvino").mkdir(parents=True)
        time.sleep(0.2)  # long enough for a concurrent preparer to find the lock taken
        (destination / "openvino" / "openvino_model.xml").write_text("<net/>")

    monkeypatch.setattr(export_module, "_export_fp32", export)
    return calls


def test_export_is_prepared_once_and_reused(fake_export: list[Path], tmp_path: Path) -> None:
    first = prepare_openvino_embedder(DEFAULT_EMBEDDING_MODEL, tmp_path)
    assert first.path == openvino_export_dir(DEFAULT_EMBEDDING_MODEL, tmp_path)
    assert first.path == tmp_path / "all-MiniLM-L6-v2-openvino"
    assert first.seconds > 0
    xml = first.path / "openvino" / "openvino_model.xml"
    written = xml.stat().st_mtime_ns
    assert json.loads((first.path / "READY.json").read_text())["precision"] == "fp32"

    second = prepare_openvino_embedder(DEFAULT_EMBEDDING_MODEL, tmp_path)
    assert (second.path, second.seconds) == (first.path, 0.0)
    assert xml.stat().st_mtime_ns == written
    assert len(fake_export) == 1
    assert not list(tmp_path.glob(".building-*"))

    prepare_openvino_embedder(DEFAULT_EMBEDDING_MODEL, tmp_path, force=True)
    assert len(fake_export) == 2


def test_half_written_export_and_stale_scratch_are_rebuilt(fake_export: list[Path], tmp_path: Path) -> None:
    final = openvino_export_dir(DEFAULT_EMBEDDING_MODEL, tmp_path)
    (final / "openvino").mkdir(parents=True)  # an export interrupted before READY.json: not usable
    (final / "openvino" / "openvino_model.xml").write_text("<truncated")
    stale = tmp_path / f".building-{final.name}-999999"
    stale.mkdir()

    export = prepare_openvino_embedder(DEFAULT_EMBEDDING_MODEL, tmp_path)
    assert export.seconds > 0
    assert (final / "openvino" / "openvino_model.xml").read_text() == "<net/>"
    assert not stale.exists()


def test_concurrent_preparers_export_once(fake_export: list[Path], tmp_path: Path) -> None:
    results: list[float] = []
    threads = [
        threading.Thread(target=lambda: results.append(prepare_openvino_embedder(models_dir=tmp_path).seconds))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_export) == 1
    assert sorted(results)[:2] == [0.0, 0.0]
    assert sorted(results)[2] > 0


def test_failed_export_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(source: Path, destination: Path) -> None:
        destination.mkdir(parents=True)
        raise RuntimeError("conversion crashed")

    monkeypatch.setattr(export_module, "_export_fp32", broken)
    with pytest.raises(EmbedderUnavailableError, match="conversion crashed"):
        prepare_openvino_embedder(DEFAULT_EMBEDDING_MODEL, tmp_path)
    assert not openvino_export_dir(DEFAULT_EMBEDDING_MODEL, tmp_path).exists()
    assert not list(tmp_path.glob(".building-*"))


def test_local_model_directories_get_their_own_export(tmp_path: Path) -> None:
    first = openvino_export_dir(str(tmp_path / "a" / "model"), tmp_path / "models")
    second = openvino_export_dir(str(tmp_path / "b" / "model"), tmp_path / "models", int8=True)
    assert first.name.startswith("model-")
    assert first.name.endswith("-openvino")
    assert second.name.endswith("-openvino-int8")
    assert first.name.removesuffix("-openvino") != second.name.removesuffix("-openvino-int8")


@pytest.mark.e2e
def test_real_export_is_reused_on_the_second_load(tmp_path: Path) -> None:
    settings = CitelineSettings(models_dir=tmp_path, embedding_backend="openvino")
    first = load_embedder(settings)
    assert isinstance(first, OpenVINOEmbedder)
    assert first.export is not None
    assert first.export.seconds > 0
    xml = first.export.path / "openvino" / "openvino_model.xml"
    written = xml.stat().st_mtime_ns
    started = time.perf_counter()
    second = load_embedder(settings)
    assert isinstance(second, OpenVINOEmbedder)
    assert second.export is not None
    assert second.export.seconds == 0.0
    assert time.perf_counter() - started < first.export.seconds
    assert xml.stat().st_mtime_ns == written
    assert np.allclose(first.embed(["reuse"]), second.embed(["reuse"]), atol=1e-6)


# -- the torch-free OpenVINO runner ------------------------------------------------------------

_TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "read", "a", "json", "file", "write", "rows", "##s", "csv"]
_TINY_DIM = 6
_TINY_MAX_TOKENS = 6


def _tiny_table() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((len(_TINY_VOCAB), _TINY_DIM)).astype(np.float32)


def write_tiny_export(models_dir: Path, *, pooling: str = "mean") -> Path:
    """A prepared export in the layout `citeline models prepare` writes, small enough to build in a
    test: a WordPiece tokenizer.json and an IR whose hidden state per token is a row of a fixed table
    (plus the token type, so that every input is wired)."""
    import openvino
    import openvino.opset13 as ops
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    export = openvino_export_dir(DEFAULT_EMBEDDING_MODEL, models_dir)
    (export / "openvino").mkdir(parents=True)
    (export / "1_Pooling").mkdir()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids, mask, types = (ops.parameter([-1, -1], openvino.Type.i64, name=name) for name in names)
    for param, name in zip((ids, mask, types), names, strict=True):
        param.output(0).set_names({name})
    hidden = ops.gather(ops.constant(_tiny_table()), ids, ops.constant(np.int64(0)))
    typed = ops.add(hidden, ops.unsqueeze(ops.convert(types, openvino.Type.f32), ops.constant(np.int64(2))))
    # The mask does not reach the table: padded rows must be dropped by pooling, not by the model.
    del mask
    typed.output(0).set_names({"last_hidden_state"})
    model = openvino.Model([typed], [ids, ops.parameter([-1, -1], openvino.Type.i64), types], "tiny")
    model.inputs[1].get_node().output(0).set_names({"attention_mask"})
    openvino.save_model(model, export / "openvino" / "openvino_model.xml", compress_to_fp16=False)

    tokenizer = Tokenizer(models.WordPiece({w: i for i, w in enumerate(_TINY_VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.enable_padding(length=64)  # a saved padding setting must not leak into batches
    tokenizer.save(str(export / "tokenizer.json"))
    (export / "tokenizer_config.json").write_text(
        json.dumps({"pad_token": "[PAD]", "model_max_length": _TINY_MAX_TOKENS})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (export / "modules.json").write_text(json.dumps(modules))
    pooling_config = {"embedding_dimension": _TINY_DIM, "pooling_mode": pooling}
    (export / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config))
    ready = {"export_version": export_module.OPENVINO_EXPORT_VERSION}
    (export / export_module.READY_MARKER).write_text(json.dumps(ready))
    return export


def _expected(token_ids: list[int]) -> np.ndarray:
    mean = _tiny_table()[token_ids].mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_openvino_embedder_tokenizes_truncates_and_mean_pools_without_torch(tmp_path: Path) -> None:
    write_tiny_export(tmp_path)
    embedder = load_embedder(CitelineSettings(models_dir=tmp_path, embedding_backend="openvino"))
    assert isinstance(embedder, OpenVINOEmbedder)
    assert (embedder.model_name, embedder.dimension, embedder.max_tokens) == (DEFAULT_EMBEDDING_MODEL, _TINY_DIM, 6)
    assert embedder.export is not None
    assert embedder.export.seconds == 0.0  # prepared: nothing exported
    assert {"json", "csv", "rows"} <= embedder.vocabulary()
    assert "##s" not in embedder.vocabulary()

    texts = ["read a JSON file", "csv", "write rows rows rows rows rows rows rows", "", "zzz"]
    vectors = embedder.embed(texts, batch_size=2)
    # [CLS] ... [SEP], cut to 6 tokens with [SEP] kept; padding of the shorter texts is not averaged in.
    expected = [[2, 4, 5, 6, 7, 3], [2, 11, 3], [2, 8, 9, 9, 9, 3], [2, 3], [2, 1, 3]]
    assert np.allclose(vectors, np.stack([_expected(ids) for ids in expected]), atol=1e-6)
    assert np.allclose(embedder.embed(texts, batch_size=32), vectors, atol=1e-6)
    assert embedder.embed([]).shape == (0, _TINY_DIM)


def test_openvino_embedder_refuses_a_pooling_it_does_not_reproduce(tmp_path: Path) -> None:
    write_tiny_export(tmp_path, pooling="cls")
    with pytest.raises(EmbedderUnavailableError, match="mean pooling"):
        load_embedder(CitelineSettings(models_dir=tmp_path, embedding_backend="openvino"))


def test_missing_export_without_the_preparation_stack_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_stack(source: Path, destination: Path) -> None:
        raise ModuleNotFoundError("No module named 'sentence_transformers'")

    monkeypatch.setattr(export_module, "bundled_model_path", lambda name: tmp_path)
    monkeypatch.setattr(export_module, "_export_fp32", no_stack)
    with pytest.raises(EmbedderUnavailableError, match=r"citeline\[prepare\]"):
        load_embedder(CitelineSettings(models_dir=tmp_path / "models", embedding_backend="openvino"))


_PREPARATION_STACK = ("torch", "transformers", "sentence_transformers", "optimum", "nncf", "gguf", "accelerate")


def test_serving_from_a_prepared_models_dir_imports_no_preparation_stack(tmp_path: Path) -> None:
    """What `citeline serve` imports, then the embedder it loads, in a fresh interpreter: none of the
    `prepare` extra (nor ``service.preparation``) may be imported, so a base install (no torch) serves
    from a prepared directory.
    (The service modules are named in a string: this test runs them, the indexes layer imports nothing.)"""
    write_tiny_export(tmp_path)
    script = (
        "import sys, service.api, service.cli, service.generation, service.answering, service.live, ingest\n"
        "from indexes import CitelineSettings, load_embedder\n"
        f"embedder = load_embedder(CitelineSettings(models_dir={str(tmp_path)!r}))\n"
        "assert embedder.embed(['read a json file']).shape == (1, embedder.dimension)\n"
        "assert 'citeline.service.preparation' not in sys.modules, 'serving imported model preparation'\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({_PREPARATION_STACK!r})))\n"
    )
    env = {**os.environ, "CITELINE_CONFIG": "/nonexistent", "CITELINE_EMBEDDING_BACKEND": "openvino"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


_PREPARED = openvino_export_dir(DEFAULT_EMBEDDING_MODEL, CitelineSettings().models_dir)


@pytest.mark.skipif(
    not export_module.is_export_ready(_PREPARED), reason="no prepared embedder (run `citeline models prepare`)"
)
def test_openvino_embedder_matches_sentence_transformers_on_the_same_export() -> None:
    """The torch-free runner against what served before it (sentence-transformers with
    backend="openvino" on the same IR), on short, empty, non-ASCII and over-long texts."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    texts = [
        "How do I parse JSON?",
        "",
        "x",
        "  Ünïcödé café naïve 日本語 — text with leading and trailing spaces  ",
        "json.loads() deserializes a JSON document into Python objects. " * 60,  # ~700 tokens: truncated
        "word " * 400,
        "Use a list comprehension to build lists. " * 12,
    ]
    ours = OpenVINOEmbedder(models_dir=_PREPARED.parent)
    assert ours.max_tokens == 256
    with export_module._quiet_optimum():
        reference = sentence_transformers.SentenceTransformer(
            str(_PREPARED),
            device="cpu",
            backend="openvino",
            local_files_only=True,
            model_kwargs={"file_name": export_module.OV_XML, "ov_config": dict(embedder_module._OV_CONFIG)},
        )
    assert reference.max_seq_length == 256
    expected = reference.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    got = ours.embed(texts, batch_size=3)
    assert np.abs(got - expected).max() < 1e-5
    assert np.sum(got * expected, axis=1).min() >= 0.99999
    vocab = reference.tokenizer.get_vocab()
    assert ours.vocabulary() == frozenset(w for w in vocab if w.isalpha() and not w.startswith("##"))

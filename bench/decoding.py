"""Decoding and prefill settings of the OpenVINO generator, against the default in the same run.

The prompts are the real ones: for every corpus (the Python docs and the three of
``make eval-corpora``), every Nth answerable question is retrieved from that corpus's index and
built into messages exactly as ``Answerer`` does (hybrid retrieval, passage budget, few-shot
prefix). Each variant is a separate pipeline and answers every prompt greedily, as the first
answer attempt does; variants take turns per prompt so none always follows another's prompt in
the prefix cache. Reported per variant, each next to the default: p50 time to first token, p50
generation time, prompt (prefill) and decode tokens/s, the decode bound from this run's memory
bandwidth, and the share of prompts whose answer text is *identical* to the default's, on every
corpus (a faster setting that changes answers is not "no loss" without an eval run).

Variants: ``prompt-lookup-3`` / ``-5`` (openvino-genai prompt-lookup decoding: candidate tokens
drafted from n-grams of the prompt, checked in one forward pass), ``dq-off`` / ``dq-64`` (the CPU
plugin's dynamic quantization of activations, off or group 64, default group 32 on this build),
``kv-f16`` (KV cache in f16 instead of the CPU default u8).

    .venv/bin/python bench/decoding.py [--every 12] [--variant NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from _common import HERE, machine, median, ratio, write_results
from generation import memory_bandwidth_gbs
from rich.console import Console
from rich.table import Table

from citeline.indexes import PassageIndex, load_embedder
from citeline.service.answering import Retriever
from citeline.service.answering.budget import excerpts
from citeline.service.answering.prompt import build_messages
from citeline.service.generation import ChatMessage, OpenVINOGenerator
from citeline.service.settings import ServiceSettings

SETS = HERE.parent / "eval" / "sets"
CORPORA = {  # eval set -> index name (as make eval-corpora and make demo build them)
    "python_faq.jsonl": "python-docs",
    "debref_questions.jsonl": "debian-reference-en",
    "handbook_questions.jsonl": "debian-handbook",
    "puzzles_questions.jsonl": "sgt-puzzles",
}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "prompt-lookup-3": {"prompt_lookup": 3},
    "prompt-lookup-5": {"prompt_lookup": 5},
    "dq-off": {"plugin_properties": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0}},
    "dq-64": {"plugin_properties": {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 64}},
    "kv-f16": {"plugin_properties": {"KV_CACHE_PRECISION": "f16"}},
}


def prompts(settings: ServiceSettings, every: int) -> list[tuple[str, str, list[ChatMessage]]]:
    """(corpus, question, messages) for every Nth answerable question of each corpus present."""
    embedder = load_embedder(settings)
    retriever, budget = Retriever(embedder, settings.retrieval_config()), settings.budget()
    out = []
    for set_name, index_name in CORPORA.items():
        if not (settings.data_dir / "indexes" / index_name).exists():
            print(f"skipped {set_name}: no index {index_name!r}")
            continue
        index = PassageIndex.open(settings.data_dir, index_name)
        rows = [json.loads(line) for line in (SETS / set_name).read_text().splitlines() if line.strip()]
        for row in [r for r in rows if r.get("answerable", True)][::every]:
            question = row["question"]
            vector = embedder.embed([question])[0]
            hits = retriever.search(index, question, settings.top_k, vector=vector)
            shown = excerpts(question, vector, hits, embedder, budget)
            messages = build_messages(question, hits, texts=shown, max_source_chars=max(600, budget.max_chars))
            out.append((set_name.split("_")[0], question, messages))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=12, help="every Nth answerable question of each corpus")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    settings = ServiceSettings()
    names = ["default", *[v for v in (args.variant or VARIANTS) if v != "default"]]
    work = prompts(settings, args.every)
    bandwidth = memory_bandwidth_gbs()
    model_dir = settings.generator_dir()
    decode_limit = bandwidth * 1e9 / (model_dir / "openvino_model.bin").stat().st_size
    generators = {
        name: OpenVINOGenerator(model_dir, cache_dir=settings.openvino_cache_dir(), **VARIANTS[name]) for name in names
    }
    rows: list[dict[str, Any]] = []
    for number, (corpus, question, messages) in enumerate(work):
        order = names[number % len(names) :] + names[: number % len(names)]
        texts: dict[str, str] = {}
        for name in order:
            started = time.perf_counter()
            result = generators[name].generate(messages, max_new_tokens=settings.max_new_tokens)
            elapsed = time.perf_counter() - started
            texts[name] = result.text
            rows.append(
                {
                    "variant": name,
                    "corpus": corpus,
                    "question": question,
                    "first": number == 0,
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "ttft_ms": round(result.time_to_first_token * 1000, 1),
                    "total_ms": round(elapsed * 1000, 1),
                    "decode_tokens_per_second": round(
                        max(0, result.completion_tokens - 1) / max(1e-6, elapsed - result.time_to_first_token), 2
                    ),
                    "text": result.text,
                }
            )
        for row in rows[-len(names) :]:
            row["same_as_default"] = row["text"] == texts["default"]
        print(
            f"{number + 1}/{len(work)} {corpus}: "
            + ", ".join(f"{r['variant']} {r['total_ms']:.0f}" for r in rows[-len(names) :]),
            flush=True,
        )

    measured = [r for r in rows if not r["first"]]  # the first prompt fills each prefix cache
    corpora = sorted({r["corpus"] for r in measured})

    def p50(name: str, key: str) -> float:
        return float(median([r[key] for r in measured if r["variant"] == name]))

    summary: dict[str, Any] = {"memory_bandwidth_gbs": round(bandwidth, 1), "decode_limit": round(decode_limit, 1)}
    for name in names:
        mine = [r for r in measured if r["variant"] == name]
        summary[name] = {
            "p50_ttft_ms": p50(name, "ttft_ms"),
            "p50_total_ms": p50(name, "total_ms"),
            "p50_decode_tokens_per_second": p50(name, "decode_tokens_per_second"),
            "prefill_tokens_per_second": round(
                sum(r["prompt_tokens"] for r in mine) / (sum(r["ttft_ms"] for r in mine) / 1000), 1
            ),
            "same_as_default": {
                c: round(
                    sum(r["same_as_default"] for r in mine if r["corpus"] == c)
                    / sum(1 for r in mine if r["corpus"] == c),
                    3,
                )
                for c in corpora
            },
        }
    console = Console(width=170)
    table = Table(
        title=f"decoding settings, {model_dir.name} ({machine()}); p50 over {len(measured) // len(names)} prompts"
    )
    for column in ("variant", "first token ms", "generation ms", "ratio", "decode tok/s", "share of bound",
                   "prompt tok/s (incl. cache)", "answers identical to default, per corpus"):  # fmt: skip
        table.add_column(column)
    base = summary["default"]
    for name in names:
        s = summary[name]
        table.add_row(
            name, f"{s['p50_ttft_ms']:.0f}", f"{s['p50_total_ms']:.0f}", ratio(s["p50_total_ms"], base["p50_total_ms"]),
            f"{s['p50_decode_tokens_per_second']:.1f}", f"{s['p50_decode_tokens_per_second'] / decode_limit:.2f}",
            f"{s['prefill_tokens_per_second']:.0f}", ", ".join(f"{c} {v:.2f}" for c, v in s["same_as_default"].items()),
        )  # fmt: skip
    console.print(table)
    console.print(f"memory bandwidth this run {bandwidth:.1f} GB/s: decode bound {decode_limit:.1f} tokens/s")
    path = write_results("decoding", {"machine": machine(), "summary": summary, "rows": rows}, args.out)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()

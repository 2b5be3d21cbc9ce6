"""Ask latency on this machine: retrieve / generate / total, time to first token, decode speed.

Runs in-process against an existing index (``make demo`` builds ``python-docs``). The baseline,
measured in the same run on the same questions, is the bare generator call on the same prompt
with nothing else around it, so the ratio column is citeline's own overhead (retrieval, prompt
building, citation parsing and span matching); absolute times drift on a shared machine, ratios
much less.

    .venv/bin/python bench/ask_latency.py --index python-docs [--questions FILE] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from indexes import PassageIndex, SentenceTransformerEmbedder
from service.answering import Answerer, search
from service.generation import ChatMessage, OpenVINOGenerator
from service.prompt import build_messages
from service.settings import ServiceSettings

HERE = Path(__file__).resolve().parent
DEFAULT_QUESTIONS = HERE / "questions" / "python_docs.txt"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="python-docs")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ask_latency.json")
    args = parser.parse_args()

    questions = [q.strip() for q in args.questions.read_text().splitlines() if q.strip() and not q.startswith("#")]
    settings = ServiceSettings()
    started = time.perf_counter()
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    generator = OpenVINOGenerator(settings.generator_dir(), cache_dir=settings.openvino_cache_dir())
    load_s = time.perf_counter() - started
    index = PassageIndex.open(settings.data_dir, args.index)
    answerer = Answerer(embedder, generator, top_k=settings.top_k, max_new_tokens=settings.max_new_tokens)

    rows = []
    for question in questions:
        answer = answerer.answer(question, index)
        # Baseline: the bare generator on the same prompt. A nonce line at the start of the last
        # turn keeps the prefix cache from reusing the sources citeline just sent, so both runs
        # reuse exactly the fixed instructions and few-shot turns and nothing more.
        messages = build_messages(question, search(index, embedder, question, settings.top_k))
        last = messages[-1]
        messages[-1] = ChatMessage(last.role, f"Request {uuid.uuid4().hex[:8]}.\n{last.content}")
        bare = generator.generate(messages, max_new_tokens=settings.max_new_tokens)
        rows.append(
            {
                "question": question,
                "abstained": answer.abstained,
                "citations": len(answer.citations),
                "prompt_tokens": answer.usage.prompt_tokens,
                "completion_tokens": answer.usage.completion_tokens,
                "retrieve_ms": answer.timings.retrieve_ms,
                "ttft_ms": answer.timings.time_to_first_token_ms,
                "generate_ms": answer.timings.generate_ms,
                "verify_ms": answer.timings.verify_ms,
                "judge_calls": answer.usage.judge_calls,
                "total_ms": answer.timings.total_ms,
                "tokens_per_second": answer.usage.tokens_per_second,
                "baseline_generate_ms": round(bare.seconds * 1000, 1),
                "baseline_ttft_ms": round(bare.time_to_first_token * 1000, 1),
            }
        )

    def column(key: str) -> list[float]:
        return [float(r[key]) for r in rows]

    decode_rates = [r["tokens_per_second"] for r in rows if r["completion_tokens"] >= 8]
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        "questions": len(rows),
        "model_load_s": round(load_s, 1),
        "p50_total_ms": statistics.median(column("total_ms")),
        "p95_total_ms": percentile(column("total_ms"), 0.95),
        "p50_ttft_ms": statistics.median(column("ttft_ms")),
        "p50_retrieve_ms": statistics.median(column("retrieve_ms")),
        "p50_generate_ms": statistics.median(column("generate_ms")),
        "p50_verify_ms": statistics.median(column("verify_ms")),
        "mean_verify_ms": round(statistics.fmean(column("verify_ms")), 1),
        "p50_verify_share": round(statistics.median(r["verify_ms"] / r["total_ms"] for r in rows if r["total_ms"]), 4),
        "judge_calls": sum(r["judge_calls"] for r in rows),
        "p50_prompt_tokens": statistics.median(column("prompt_tokens")),
        "p50_decode_tokens_per_second": statistics.median(decode_rates) if decode_rates else 0.0,
        "baseline_p50_generate_ms": statistics.median(column("baseline_generate_ms")),
        "baseline_p50_ttft_ms": statistics.median(column("baseline_ttft_ms")),
        "abstained": sum(1 for r in rows if r["abstained"]),
    }
    summary["overhead_ratio_p50"] = round(summary["p50_total_ms"] / summary["baseline_p50_generate_ms"], 3)

    console = Console(width=170)
    table = Table(title=f"/v1/ask path, in-process, index {args.index!r} ({summary['machine']})")
    for name in ("question", "abst", "prompt tok", "out tok", "retrieve ms", "TTFT ms", "total ms", "bare gen ms",
                 "ratio", "tok/s"):  # fmt: skip
        table.add_column(name, overflow="fold")
    for r in rows:
        cells = [r["question"][:48], "yes" if r["abstained"] else "", str(r["prompt_tokens"])]
        cells += [str(r["completion_tokens"]), f"{r['retrieve_ms']:.0f}", f"{r['ttft_ms']:.0f}"]
        cells += [f"{r['total_ms']:.0f}", f"{r['baseline_generate_ms']:.0f}"]
        cells += [
            f"{r['total_ms'] / r['baseline_generate_ms']:.2f}",
            f"{r['tokens_per_second']:.1f}" if r["completion_tokens"] >= 8 else "-",
        ]
        table.add_row(*cells)
    console.print(table)
    summary_table = Table(title="summary (baseline = bare generator call on the same prompt, same run)")
    summary_table.add_column("figure")
    summary_table.add_column("citeline")
    summary_table.add_column("baseline")
    summary_table.add_column("ratio")
    summary_table.add_row(
        "p50 total / generate ms", f"{summary['p50_total_ms']:.0f}", f"{summary['baseline_p50_generate_ms']:.0f}",
        f"{summary['overhead_ratio_p50']:.3f}",
    )  # fmt: skip
    summary_table.add_row(
        "p50 time to first token ms", f"{summary['p50_ttft_ms']:.0f}", f"{summary['baseline_p50_ttft_ms']:.0f}",
        f"{summary['p50_ttft_ms'] / max(summary['baseline_p50_ttft_ms'], 1):.3f}",
    )  # fmt: skip
    summary_table.add_row("p95 total ms", f"{summary['p95_total_ms']:.0f}", "", "")
    verify_cell = f"{summary['p50_verify_ms']:.0f} / {summary['mean_verify_ms']:.0f}"
    summary_table.add_row(
        "verify ms p50 / mean (share of total, p50)", verify_cell, "", f"{summary['p50_verify_share']:.3f}"
    )
    summary_table.add_row("judge calls (all questions)", str(summary["judge_calls"]), "", "")
    summary_table.add_row("p50 retrieve ms", f"{summary['p50_retrieve_ms']:.0f}", "", "")
    summary_table.add_row("p50 prompt tokens", f"{summary['p50_prompt_tokens']:.0f}", "", "")
    summary_table.add_row("p50 decode tokens/s", f"{summary['p50_decode_tokens_per_second']:.1f}", "", "")
    summary_table.add_row("model load s", f"{summary['model_load_s']:.1f}", "", "")
    console.print(summary_table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()

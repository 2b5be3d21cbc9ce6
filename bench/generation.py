"""Generation on this machine against its physical limits: time to first token, prefill and decode
speed, prompt tokens per answer, with whole passages (the default) and the prompt budget side by side.

Limits are measured in the same run: memory read bandwidth (torch sum over 1 GiB, both cores) and
fp32 matrix-multiply throughput. Decode is memory-bound: each new token reads every weight once, so
its limit is bandwidth / weight bytes (the int4 IR's size). Prefill is compute-bound: about
2 x (non-embedding parameters) FLOPs per prompt token. Its fp32 bound (GEMM FLOP/s / that) is shown
for scale only: OpenVINO runs the int4 weights through int8 dot-product kernels, whose peak is
higher and not measured here, so prefill goes past the fp32 bound. The
baseline is the same generator on the same questions and passages with whole passages in the
prompt (each cut at 600 characters, as before the budget).

    .venv/bin/python bench/generation.py --index python-docs [--questions FILE] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from _common import HERE, machine, median, ratio, write_results
from rich.console import Console
from rich.table import Table

from citeline.indexes import PassageIndex, load_embedder
from citeline.service.answering.budget import BudgetConfig, excerpts
from citeline.service.answering.prompt import build_messages
from citeline.service.generation import ChatMessage, OpenVINOGenerator
from citeline.service.settings import ServiceSettings

DEFAULT_QUESTIONS = HERE / "questions" / "python_docs.txt"


def memory_bandwidth_gbs() -> float:
    """Best of five full reads of a 1 GiB float32 tensor, in GB/s."""
    import torch

    data = torch.ones(2**28, dtype=torch.float32)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        data.sum().item()
        best = min(best, time.perf_counter() - started)
    return data.numel() * 4 / best / 1e9


def gemm_gflops() -> float:
    """Best fp32 matrix-multiply throughput over ten 2048^3 products, in GFLOP/s."""
    import torch

    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(10):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best / 1e9


def non_embedding_parameters(model_dir: Path) -> int:
    """Parameters a prompt token multiplies through (attention and MLP of every layer), from config.json."""
    config = json.loads((model_dir / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    kv = config.get("num_key_value_heads", config["num_attention_heads"]) * head_dim
    attention = 2 * hidden * hidden + 2 * hidden * kv
    mlp = 3 * hidden * config["intermediate_size"]
    return int(layers * (attention + mlp))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default="python-docs")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--quick", action="store_true", help="three questions")
    parser.add_argument("--budget-chars", type=int, default=1400, help="the budget to compare")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    settings = ServiceSettings() if args.data_dir is None else ServiceSettings(data_dir=args.data_dir)
    questions = [q.strip() for q in args.questions.read_text().splitlines() if q.strip() and not q.startswith("#")]
    questions = questions[:3] if args.quick else questions

    bandwidth, gflops = memory_bandwidth_gbs(), gemm_gflops()
    model_dir = settings.generator_dir()
    weight_bytes = (model_dir / "openvino_model.bin").stat().st_size
    flops_per_token = 2 * non_embedding_parameters(model_dir)
    started = time.perf_counter()
    generator = OpenVINOGenerator(model_dir, cache_dir=settings.openvino_cache_dir())
    load_s = time.perf_counter() - started
    embedder = load_embedder(settings)
    index = PassageIndex.open(settings.data_dir, args.index)
    budget = BudgetConfig(max_chars=args.budget_chars)

    rows: list[dict[str, Any]] = []
    previous: list[int] = []
    cold_ttft_ms = 0.0
    for number, question in enumerate(questions):
        vector = embedder.embed([question])[0]
        hits = index.search(vector, settings.top_k)
        variants: dict[str, list[ChatMessage]] = {
            "budget": build_messages(
                question,
                hits,
                texts=excerpts(question, vector, hits, embedder, budget),
                max_source_chars=max(600, budget.max_chars),
            ),
            "whole": build_messages(question, hits),
        }
        # Alternate which goes first, so neither always follows the other's sources.
        order = ["budget", "whole"] if number % 2 == 0 else ["whole", "budget"]
        for label in order:
            ids = generator.prompt_token_ids(variants[label])
            cached = common_prefix(previous, ids)
            previous = ids
            result = generator.generate(variants[label], max_new_tokens=settings.max_new_tokens)
            if number == 0 and label == order[0]:
                cold_ttft_ms = result.time_to_first_token * 1000
                continue  # the first call fills the prefix cache: reported apart, not in the medians
            new_tokens = result.prompt_tokens - cached
            rows.append(
                {
                    "question": question,
                    "variant": label,
                    "prompt_tokens": result.prompt_tokens,
                    "new_prompt_tokens": new_tokens,
                    "completion_tokens": result.completion_tokens,
                    "ttft_ms": round(result.time_to_first_token * 1000, 1),
                    "total_ms": round(result.seconds * 1000, 1),
                    "prefill_tokens_per_second": round(new_tokens / result.time_to_first_token, 1),
                    "decode_tokens_per_second": round(result.tokens_per_second, 2),
                }
            )

    def p50(variant: str, key: str, *, decode: bool = False) -> float:
        values = [r[key] for r in rows if r["variant"] == variant and (not decode or r["completion_tokens"] >= 8)]
        return float(median(values))

    decode_limit = bandwidth * 1e9 / weight_bytes
    prefill_limit = gflops * 1e9 / flops_per_token
    summary: dict[str, Any] = {
        "questions": len(questions),
        "model_load_s": round(load_s, 1),
        "memory_bandwidth_gbs": round(bandwidth, 1),
        "gemm_gflops": round(gflops, 1),
        "weight_bytes": weight_bytes,
        "flops_per_prompt_token": flops_per_token,
        "decode_limit_tokens_per_second": round(decode_limit, 1),
        "prefill_limit_tokens_per_second": round(prefill_limit, 1),
        "cold_ttft_ms": round(cold_ttft_ms, 1),
        "max_source_chars": budget.max_chars,
    }
    for variant in ("budget", "whole"):
        for key in ("prompt_tokens", "new_prompt_tokens", "ttft_ms", "total_ms", "prefill_tokens_per_second"):
            summary[f"{variant}_p50_{key}"] = p50(variant, key)
        summary[f"{variant}_p50_decode_tokens_per_second"] = p50(variant, "decode_tokens_per_second", decode=True)

    console = Console(width=160)
    title = f"generation, {model_dir.name}, index {args.index!r} ({machine()}); p50 over {len(questions)} questions"
    table = Table(title=title)
    for column in ("figure", "prompt budget 1400", "whole passages (default)", "ratio", "target / limit"):
        table.add_column(column)

    def row(label: str, key: str, target: str, fmt: str = "{:.0f}") -> None:
        a, b = summary[f"budget_p50_{key}"], summary[f"whole_p50_{key}"]
        table.add_row(label, fmt.format(a), fmt.format(b), ratio(a, b), target)

    row("prompt tokens", "prompt_tokens", "")
    row("new prompt tokens (after the cached prefix)", "new_prompt_tokens", "")
    row("time to first token, ms", "ttft_ms", "<= 2000 (target)")
    row("generation total, ms", "total_ms", "")
    row("prefill tokens/s", "prefill_tokens_per_second", f"{prefill_limit:.0f} (fp32-GEMM bound; int8 kernels pass it)")
    row("decode tokens/s", "decode_tokens_per_second", f"{decode_limit:.1f} (bandwidth limit)", "{:.1f}")
    console.print(table)
    physics = Table(title="physical limits, measured in this run")
    for column in ("figure", "value", "share of limit"):
        physics.add_column(column)
    physics.add_row("memory read bandwidth", f"{bandwidth:.1f} GB/s", "")
    physics.add_row("fp32 GEMM throughput", f"{gflops:.0f} GFLOP/s", "")
    physics.add_row("weights read per decoded token", f"{weight_bytes / 1e9:.2f} GB", "")
    physics.add_row("FLOPs per prompt token", f"{flops_per_token / 1e9:.2f} GFLOP", "")
    decode = summary["budget_p50_decode_tokens_per_second"]
    physics.add_row("decode tokens/s", f"{decode:.1f}", f"{decode / decode_limit:.2f}")
    prefill = summary["budget_p50_prefill_tokens_per_second"]
    physics.add_row("prefill tokens/s", f"{prefill:.0f}", f"{prefill / prefill_limit:.2f}")
    physics.add_row("cold time to first token (empty prefix cache), ms", f"{cold_ttft_ms:.0f}", "")
    physics.add_row("model load, s", f"{load_s:.1f}", "")
    console.print(physics)
    path = write_results("generation", {"summary": summary, "rows": rows}, args.out)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()

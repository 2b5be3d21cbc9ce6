"""Heavy model-preparation stages, each run in its own process by ``prepare.py``.

``python -m citeline.service.preparation._stages dequantize GGUF_DIR GGUF_NAME OUT_DIR``
``python -m service.generation._prepare_stages export FP32_DIR OUT_DIR``
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def dequantize(gguf_dir: Path, gguf_name: str, out_dir: Path) -> None:
    """Load the GGUF with transformers (dequantized to fp32) and save a plain checkpoint.

    ``save_pretrained`` refuses a model that still remembers it came from a GGUF, so the weights
    are moved into a model built from the bare config first.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    state = loaded.state_dict()
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=gguf_name)
    del loaded
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    plain.load_state_dict(state, strict=False)
    plain.tie_weights()
    del state
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def export(fp32_dir: Path, out_dir: Path) -> None:
    """Export to OpenVINO with int4 weights plus OpenVINO tokenizer/detokenizer models.

    Goes through optimum-cli's own command: it is the path that applies the weight compression
    (``main_export`` alone leaves the weights in fp32).
    """
    from optimum.commands.optimum_cli import main as optimum_cli

    sys.argv = [
        "optimum-cli",
        "export",
        "openvino",
        "--model",
        str(fp32_dir),
        "--task",
        "text-generation-with-past",
        "--weight-format",
        "int4",
        str(out_dir),
    ]
    optimum_cli()


def main(argv: list[str]) -> int:
    stage, *args = argv
    if stage == "dequantize":
        dequantize(Path(args[0]), args[1], Path(args[2]))
    elif stage == "export":
        export(Path(args[0]), Path(args[1]))
    else:
        print(f"unknown stage {stage!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

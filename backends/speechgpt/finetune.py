"""LoRA fine-tuning of a unit LM on Telugu unit sequences (SpeechGPT's modality-adaptation stage, with peft).

Each training example is one utterance spelled as SpeechGPT spells units, ``<sosp><12><7>...<eosp>``, and the model
learns to continue it (next-token loss over the whole sequence). Only the LoRA matrices train; the base model is
frozen. Unit sequences come from a ``.jsonl`` (one ``{"units": [..]}`` per line) or are extracted from a harness
dataset with the backend's HuBERT + k-means::

    python -m backends.speechgpt.finetune --llm LLM_DIR --units units.jsonl --out adapter/ --steps 200
    python -m backends.speechgpt.finetune --llm LLM_DIR --data telugu-mini --hubert H --out adapter/

then ``s2s-bench run --backend speechgpt:lora=adapter/,...``. On CPU keep it small (``--steps``, ``--max-units``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class LoraRecipe:
    """Training settings. ``target_modules`` are Llama's attention projections."""

    steps: int = 200
    batch_size: int = 4
    lr: float = 2e-4
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    max_units: int = 512
    seed: int = 0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


def read_unit_jsonl(path: str | Path) -> list[list[int]]:
    """Unit sequences from a ``.jsonl`` with one ``{"units": [int, ...]}`` per line; bad lines name their number."""
    sequences = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            units = json.loads(line)["units"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{n}: expected a JSON object with a `units` list") from None
        if not units or not all(isinstance(u, int) and u >= 0 for u in units):
            raise ValueError(f"{path}:{n}: `units` must be a non-empty list of non-negative ints")
        sequences.append(units)
    if not sequences:
        raise ValueError(f"{path}: no unit sequences")
    return sequences


def train_lora(
    llm_dir: str | Path, sequences: list[list[int]], out_dir: str | Path, recipe: LoraRecipe | None = None
) -> list[float]:
    """Train a LoRA adapter on ``sequences`` and save it (peft format) into ``out_dir``; returns the loss per step.

    Runs on CPU (float32) or the first CUDA device. Sequences longer than ``recipe.max_units`` are cut.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import units_to_text

    recipe = recipe or LoraRecipe()
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(llm_dir), local_files_only=True)
    missing = [
        t for t in ("<sosp>", "<eosp>", "<0>") if tokenizer.convert_tokens_to_ids(t) == tokenizer.unk_token_id
    ]
    if missing:
        raise ValueError(
            f"{llm_dir}: the tokenizer has no unit tokens {missing}; add <0>..<K-1>, <sosp>, <eosp>"
        )
    model = AutoModelForCausalLM.from_pretrained(str(llm_dir), local_files_only=True).to(device)
    lora = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,
        lora_dropout=recipe.dropout,
        target_modules=list(recipe.target_modules),
        task_type="CAUSAL_LM",
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = get_peft_model(model, lora)
    model.train()
    texts = [units_to_text(s[: recipe.max_units]) for s in sequences]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr)
    losses = []
    order: list[int] = []
    for step in range(recipe.steps):
        if len(order) < recipe.batch_size:
            order += random.sample(range(len(texts)), len(texts))
        batch = [texts[order.pop()] for _ in range(min(recipe.batch_size, len(texts)))]
        enc = tokenizer(batch, return_tensors="pt", padding=True).to(device)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"LoRA step {step}: loss is {loss.item()}; lower --lr")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    out_dir = Path(out_dir)
    model.save_pretrained(str(out_dir))
    (out_dir / "recipe.json").write_text(
        json.dumps({**asdict(recipe), "examples": len(texts), "losses": losses})
    )
    return losses


def units_from_dataset(utterances: Iterable[Any], extractor: Any) -> list[list[int]]:
    """Extract units from harness utterances (``.audio`` float32 16 kHz) with a :class:`UnitExtractor`."""
    return [extractor.units(u.audio) for u in utterances]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m backends.speechgpt.finetune", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--llm", required=True, help="unit LM folder (Llama with unit tokens)")
    p.add_argument("--out", required=True, help="where the adapter is written")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--units", help='.jsonl with {"units": [...]} per line')
    src.add_argument("--data", help="harness dataset name (needs --hubert)")
    p.add_argument("--hubert", help="HuBERT folder with km.npy (for --data)")
    p.add_argument("--hubert-layer", type=int, default=11)
    p.add_argument("--limit", type=int, default=None, help="first N utterances of --data")
    for field_name, default in asdict(LoraRecipe()).items():
        if field_name != "target_modules":
            p.add_argument("--" + field_name.replace("_", "-"), type=type(default), default=default)
    args = p.parse_args(argv)
    if args.units:
        sequences = read_unit_jsonl(args.units)
    else:
        if not args.hubert:
            p.error("--data needs --hubert (a HubertModel folder holding km.npy)")
        import numpy as np
        from transformers import HubertModel

        from harness.data import load_utterances

        from .units import UnitExtractor

        hubert = HubertModel.from_pretrained(args.hubert, local_files_only=True).eval()
        extractor = UnitExtractor(hubert, np.load(Path(args.hubert) / "km.npy"), args.hubert_layer)
        sequences = units_from_dataset(load_utterances(args.data, limit=args.limit), extractor)
    recipe = LoraRecipe(**{k: getattr(args, k) for k in asdict(LoraRecipe()) if k != "target_modules"})
    losses = train_lora(args.llm, sequences, args.out, recipe)
    print(
        f"trained {len(losses)} steps on {len(sequences)} sequences: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    print(f"adapter written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

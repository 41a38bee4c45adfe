"""GET /model: the loaded model and its card, with each layer's dev F1.

The model is named by its name and version only: where the server keeps its checkpoint is
no client's business (and would tell a caller about the server's file system).
"""

from __future__ import annotations

import json
import math

from fastapi import APIRouter

from ...schemas import ErrorResponse, LayerCard, ModelCard
from ..deps import LoadedParser, Service

router = APIRouter()


def layer_cards(n_layers: int, default_layer: int, dev_f1_per_layer: object) -> list[LayerCard]:
    """One entry per layer; ``dev_f1`` is null where the card records none (or not a number)."""
    recorded = dev_f1_per_layer if isinstance(dev_f1_per_layer, list) else []
    cards = []
    for index in range(n_layers):
        value = recorded[index] if index < len(recorded) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            value = None
        cards.append(LayerCard(index=index, dev_f1=None if value is None else float(value),
                               default=index == default_layer))
    return cards


@router.get("/model", response_model=ModelCard, responses={503: {"model": ErrorResponse}},
            summary="The model and its card")
async def model_card(service: Service, loaded: LoadedParser) -> ModelCard:
    parser, _ = loaded
    metadata = parser.metadata
    assert service.model is not None
    return ModelCard(
        name=service.model.name,
        version=service.model.version,
        n_layers=parser.n_layers,
        default_layer=parser.default_layer,
        default_decoder=parser.default_decoder,
        default_right_branching_bias=parser.default_right_branching_bias,
        punctuation=parser.default_punctuation,
        vocabulary_size=len(parser.vocab),
        parameters=sum(parameter.numel() for parameter in parser.model.parameters()),
        config=parser.model.config.to_dict(),
        training_data=metadata.get("training_data"),
        dev_perplexity=metadata.get("dev_perplexity"),
        dev_f1=metadata.get("dev_f1"),
        dev_f1_per_layer=metadata.get("dev_f1_per_layer"),
        layers=layer_cards(parser.n_layers, parser.default_layer, metadata.get("dev_f1_per_layer")),
        metadata=json.loads(json.dumps(metadata, default=str)),  # anything odd in the card becomes a string
    )

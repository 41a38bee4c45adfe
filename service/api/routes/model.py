"""GET /model: the models of every language served (``languages``), and the card of one
(``?language=zh``; by default the default language's), with each layer's dev F1 and the terms of use of
its training data.

The model is named by its name and version only: where the server keeps its checkpoint is
no client's business (and would tell a caller about the server's file system).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ....models.languages import language_name
from ...errors import APIError
from ...languages import ServedModels
from ...schemas import ErrorResponse, LanguageEntry, LayerCard, ModelCard, RequestLimitsCard
from ..deps import Service

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


def language_entries(models: ServedModels) -> list[LanguageEntry]:
    """Every language loaded, in the order configured, with its model and terms."""
    default = models.default_language
    return [LanguageEntry(language=served.language, language_name=language_name(served.language), model=served.model,
                          terms=served.terms, default=served.language == default)
            for language in models.configured if (served := models.loaded.get(language)) is not None]


@router.get("/model", response_model=ModelCard, responses={422: {"model": ErrorResponse},
                                                            503: {"model": ErrorResponse}},
            summary="The models of every language served, and one's card")
async def model_card(request: Request, service: Service, language: Annotated[str | None, Query(
        description="ISO 639-1 code of the language whose card to give (default: the default language, en)")] = None,
                     ) -> ModelCard:
    """The card of one language's model (``language``, by default the language a request without one
    is parsed in), and ``languages``: every language served, with its model and the terms of use of
    its training data (the Chinese model's are non-commercial)."""
    unknown = sorted(set(request.query_params) - {"language"})
    if unknown:  # "?lang=zh" would otherwise give English's card without a word
        raise APIError(422, "unknown_parameter", f"unknown query parameter {unknown[0]!r}: GET /model takes only "
                       "language (an ISO 639-1 code, e.g. ?language=zh)")
    served, _ = service.require_model(language)
    parser, metadata = served.parser, served.parser.metadata
    return ModelCard(
        name=served.model.name,
        version=served.model.version,
        language=served.language,
        language_name=language_name(served.language),
        terms=served.terms,
        languages=language_entries(service.models),
        n_layers=parser.n_layers,
        default_layer=parser.default_layer,
        default_decoder=parser.default_decoder,
        default_gate=parser.default_gate,
        default_right_branching_bias=parser.default_right_branching_bias,
        default_punctuation_first=parser.default_punctuation_first,
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
        limits=RequestLimitsCard(max_body_bytes=service.settings.max_body_bytes, **asdict(service.limits)),
    )

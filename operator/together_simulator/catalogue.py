"""What the simulated Together offers: hardware, the models deployable on it, zones, serverless endpoints.

The built-in catalogue uses real ids: the guide's Mixtral example on 2x/4x/8x A100 and H100 SXM,
the API reference's Llama-3-8b on one A100, and models from the OpenAPI examples. A file given in
`SimulatorConfig.catalogue_file` replaces whole sections (a section it leaves out keeps the built-in
one), for example:

    hardware:
      - {id: 2x_nvidia_h100_80gb_sxm, gpu_type: h100-80gb, gpu_link: sxm, gpu_memory: 80,
         gpu_count: 2, cents_per_minute: 11.2}
    models:
      - id: mistralai/Mixtral-8x7B-Instruct-v0.1
        hardware: {2x_nvidia_h100_80gb_sxm: available}
    availability_zones: [us-east-1a]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

HardwareStatus = Literal["available", "unavailable", "insufficient"]


class HardwareOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    gpu_type: str
    gpu_link: str
    gpu_memory: float
    gpu_count: int
    cents_per_minute: float


class ModelOffer(BaseModel):
    """A model that dedicated endpoints can serve, with the hardware it runs on and its availability."""

    model_config = ConfigDict(extra="forbid")

    id: str
    hardware: dict[str, HardwareStatus]


class ServerlessEndpoint(BaseModel):
    """A shared endpoint run by Together: every account sees it in an unfiltered list."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    model: str
    owner: str = "together"
    created_at: str


def _hardware(gpu: str, link: str, memory: int, count: int, cents_per_gpu_minute: float) -> HardwareOffer:
    return HardwareOffer(
        id=f"{count}x_nvidia_{gpu}_{memory}gb_{link}",
        gpu_type=f"{gpu}-{memory}gb",
        gpu_link=link,
        gpu_memory=memory,
        gpu_count=count,
        cents_per_minute=round(cents_per_gpu_minute * count, 2),
    )


def _builtin_hardware() -> list[HardwareOffer]:
    return [
        _hardware("a100", "pcie", 80, 1, 4.0),
        *(_hardware("a100", "sxm", 80, count, 4.27) for count in (1, 2, 4, 8)),
        *(_hardware("h100", "sxm", 80, count, 5.6) for count in (1, 2, 4, 8)),
        _hardware("h200", "sxm", 140, 8, 8.32),
    ]


def _builtin_models() -> list[ModelOffer]:
    return [
        ModelOffer(
            id="mistralai/Mixtral-8x7B-Instruct-v0.1",
            hardware={
                f"{count}x_nvidia_{gpu}_80gb_sxm": "available"
                for gpu in ("a100", "h100")
                for count in (2, 4, 8)
            },
        ),
        ModelOffer(
            id="meta-llama/Llama-3-8b-chat-hf",
            hardware={
                "1x_nvidia_a100_80gb_sxm": "available",
                "1x_nvidia_h100_80gb_sxm": "available",
                "2x_nvidia_h100_80gb_sxm": "available",
            },
        ),
        # Two one-GPU A100 variants and capacity problems, as the hardware API reports them.
        ModelOffer(
            id="Qwen/Qwen3.5-9B-FP8",
            hardware={
                "1x_nvidia_a100_80gb_sxm": "available",
                "1x_nvidia_a100_80gb_pcie": "unavailable",
                "1x_nvidia_h100_80gb_sxm": "insufficient",
            },
        ),
        ModelOffer(
            id="deepseek-ai/DeepSeek-R1",
            hardware={"8x_nvidia_h200_140gb_sxm": "available", "8x_nvidia_h100_80gb_sxm": "insufficient"},
        ),
    ]


def _builtin_serverless_endpoints() -> list[ServerlessEndpoint]:
    return [
        ServerlessEndpoint(
            id="endpoint-5c0c20db-62fe-4f41-8ffc-d9e4ea1a264e",
            name="allenai/OLMo-7B",
            model="allenai/OLMo-7B",
            created_at="2024-02-28T21:34:35.444Z",
        ),
        ServerlessEndpoint(
            id="endpoint-0b9d4f3e-6f1c-4c8e-9a53-3a0b2f6d7c11",
            name="meta-llama/Llama-3.3-70B-Instruct-Turbo",
            model="meta-llama/Llama-3.3-70B-Instruct-Turbo",
            created_at="2024-12-06T18:02:11.120Z",
        ),
    ]


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hardware: list[HardwareOffer] = Field(default_factory=_builtin_hardware)
    models: list[ModelOffer] = Field(default_factory=_builtin_models)
    availability_zones: list[str] = Field(
        default_factory=lambda: ["us-central-4b", "us-east-1a", "us-west-2a", "eu-central-1a"]
    )
    serverless_endpoints: list[ServerlessEndpoint] = Field(default_factory=_builtin_serverless_endpoints)

    @model_validator(mode="after")
    def _models_name_known_hardware(self) -> Catalogue:
        known = {offer.id for offer in self.hardware}
        for model in self.models:
            unknown = sorted(set(model.hardware) - known)
            if unknown:
                raise ValueError(f"model {model.id} names hardware missing from the hardware list: {unknown}")
        return self

    @classmethod
    def load(cls, path: Path | None) -> Catalogue:
        """The built-in catalogue, with the sections of the file at `path` (YAML or JSON) replacing it."""
        if path is None:
            return cls()
        sections = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(sections, dict):
            raise ValueError(f"{path}: a catalogue file holds a mapping of sections")
        return cls.model_validate(sections)

    def model(self, model_id: str) -> ModelOffer | None:
        return next((model for model in self.models if model.id == model_id), None)

    def hardware_offer(self, hardware_id: str) -> HardwareOffer | None:
        return next((offer for offer in self.hardware if offer.id == hardware_id), None)

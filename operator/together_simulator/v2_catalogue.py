"""The v2 view of the catalogue: the v1 catalogue's models as public model resources of the platform
project, one certified config revision per hardware (two for a model with a speculator: with and
without its draft model), and the instance types with prices and regions.

Names follow the 3.x SDK's CLI (`together/lib/cli/api/endpoints/_utils/_hardware_pricing.py`): a config
names its hardware through the selectors `accelerator_type` and `accelerator_count`, and the instance
type is `{count}x{type}`, e.g. `2xnvidia-h100-80gb`. v1 hardware ids that differ only by interconnect
(`1x_nvidia_a100_80gb_sxm`, `..._pcie`) are one v2 instance type, priced as the first a model runs on. Ids are
derived from names, so they are the same in every run: `ml_`, `rv_`, `cr_`, `arch_` and a hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from together_simulator.catalogue import Catalogue, HardwareOffer, HardwareStatus

PLATFORM_PROJECT = "proj_platform"
PLATFORM_ORGANIZATION = "org_together"
# Speculative decoding: these models have, on each hardware, a config that pins a draft model (a
# speculator model resource) beside the one without (a config's `draftModel` is what enables it).
SPECULATORS = {"mistralai/Mixtral-8x7B-Instruct-v0.1": "together/Mixtral-8x7B-speculator"}
# The free capacity the instance-type list reports in every region (a lower bound).
REGION_HEADROOM = 8


def derived_id(prefix: str, *parts: str) -> str:
    return f"{prefix}_{hashlib.sha256('/'.join(parts).encode()).hexdigest()[:20]}"


def v2_hardware_name(offer: HardwareOffer) -> str:
    """`2x_nvidia_h100_80gb_sxm` (gpu_type h100-80gb, 2 GPUs) -> `2xnvidia-h100-80gb`."""
    return f"{offer.gpu_count}xnvidia-{offer.gpu_type}"


@dataclass(frozen=True)
class ModelResource:
    id: str
    name: str
    revision_id: str
    is_speculator: bool

    @property
    def resource(self) -> str:
        return f"projects/{PLATFORM_PROJECT}/models/{self.id}"

    @property
    def pinned(self) -> str:
        return f"{self.resource}/revisions/{self.revision_id}"


@dataclass(frozen=True)
class ConfigRevision:
    id: str
    model: ModelResource
    hardware: str
    gpu_type: str
    gpu_count: int
    availability: HardwareStatus
    speculator: ModelResource | None

    @property
    def resource(self) -> str:
        return f"projects/{PLATFORM_PROJECT}/configs/{self.id}"


@dataclass(frozen=True)
class InstanceTypeOffer:
    id: str
    name: str
    offer: HardwareOffer
    price_cents_per_hour: int


@dataclass(frozen=True)
class SupportedModelEntry:
    id: str
    model: ModelResource
    configs: tuple[ConfigRevision, ...]


class V2Catalogue:
    def __init__(self, catalogue: Catalogue) -> None:
        self.zones = list(catalogue.availability_zones)
        self.models: list[ModelResource] = []
        self.configs: list[ConfigRevision] = []
        self.supported: list[SupportedModelEntry] = []
        offers = {offer.id: offer for offer in catalogue.hardware}
        # The v1 offer each v2 hardware name stands for: the first a model runs on, else the first listed.
        chosen: dict[str, HardwareOffer] = {}
        for model_offer in catalogue.models:
            model = self._model(model_offer.id, is_speculator=False)
            speculator_name = SPECULATORS.get(model_offer.id)
            speculator = self._model(speculator_name, is_speculator=True) if speculator_name else None
            configs: list[ConfigRevision] = []
            for hardware_id, availability in model_offer.hardware.items():
                offer = offers[hardware_id]
                hardware = v2_hardware_name(offer)
                if any(config.hardware == hardware for config in configs):
                    continue
                chosen.setdefault(hardware, offer)
                configs += [
                    ConfigRevision(
                        id=derived_id("cr", model_offer.id, hardware, *([draft.name] if draft else [])),
                        model=model,
                        hardware=hardware,
                        gpu_type=f"nvidia-{offer.gpu_type}",
                        gpu_count=offer.gpu_count,
                        availability=availability,
                        speculator=draft,
                    )
                    for draft in ((None, speculator) if speculator else (None,))
                ]
            self.configs += configs
            self.supported.append(
                SupportedModelEntry(
                    id=derived_id("arch", model_offer.id), model=model, configs=tuple(configs)
                )
            )
        for offer in catalogue.hardware:
            chosen.setdefault(v2_hardware_name(offer), offer)
        self.instance_types = [
            InstanceTypeOffer(
                id=derived_id("it", name),
                name=name,
                offer=offer,
                price_cents_per_hour=round(offer.cents_per_minute * 60),
            )
            for name, offer in chosen.items()
        ]

    def _model(self, name: str, *, is_speculator: bool) -> ModelResource:
        known = next((model for model in self.models if model.name == name), None)
        if known is not None:
            return known
        model = ModelResource(
            id=derived_id("ml", name),
            name=name,
            revision_id=derived_id("rv", name, "1"),
            is_speculator=is_speculator,
        )
        self.models.append(model)
        return model

    def model(self, model_id: str) -> ModelResource | None:
        return next((model for model in self.models if model.id == model_id), None)

    def config(self, config_id: str) -> ConfigRevision | None:
        return next((config for config in self.configs if config.id == config_id), None)

    def instance_type(self, hardware: str) -> InstanceTypeOffer | None:
        return next((it for it in self.instance_types if hardware in (it.id, it.name)), None)

    def supported_model(self, supported_id: str) -> SupportedModelEntry | None:
        return next((entry for entry in self.supported if entry.id == supported_id), None)

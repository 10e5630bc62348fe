"""How a simulator is set up: accounts, timing, catalogue and the fault rules it starts with."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FaultKind = Literal[
    "latency",
    "rate_limit",
    "server_error",
    "drop_connection",
    "lose_create_response",
    "error_after_update",
]

DEFAULT_API_KEY = "sim-key"
DEFAULT_OWNER = "devuser"


class FaultRule(BaseModel):
    """One kind of misbehaviour, applied to the API calls it matches.

    `method` and `path` narrow the calls (no value: every call). `path` is a regular expression matched
    at the start of the full request path, `/v1` included, so a plain prefix such as `/v1/endpoints`
    works and `/v1/endpoints$` matches only the collection. With `times`, the rule applies to that many
    matching calls and is then spent; `probability` makes a matching call faulted only some of the time
    (drawn from the simulator's seeded random source).

    - `latency`: wait `seconds` before handling the call (combines with any other fault).
    - `rate_limit`: answer 429 with a `Retry-After: <retry_after>` header (a fraction of a second is
      sent as a decimal, which HTTP does not define but the official SDK reads).
    - `server_error`: answer `status` (5xx) with the error body.
    - `drop_connection`: close the connection without a response.
    - `lose_create_response`: a create (POST /v1/endpoints, or a v2 endpoint or deployment) succeeds on
      the server, but the connection is closed instead of sending the 200 response.
    - `error_after_update`: an update (PATCH /v1/endpoints/{id}) answers 200, and the endpoint then
      goes to state ERROR; on a v2 deployment update, the deployment goes to FAILED.
    """

    model_config = ConfigDict(extra="forbid")

    fault: FaultKind
    method: str | None = None
    path: str | None = None
    times: int | None = Field(default=None, ge=1)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    seconds: float = Field(default=0.0, ge=0.0)
    retry_after: float = Field(default=1.0, ge=0.0)
    status: int = Field(default=500, ge=500, le=599)

    @field_validator("path")
    @classmethod
    def _path_is_a_regex(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                re.compile(path)
            except re.error as error:
                raise ValueError(f"path is not a regular expression: {error}") from error
        return path


class SimulatorConfig(BaseModel):
    """Everything that shapes a simulator run; the defaults suit a demo, tests shorten the timings."""

    model_config = ConfigDict(extra="forbid")

    accounts: dict[str, str] = Field(
        default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_OWNER},
        description="API key -> account (owner) name; each account sees only its own endpoints.",
    )
    transition_seconds: float = Field(
        default=2.0,
        ge=0.0,
        description="Duration of each lifecycle step: PENDING, STARTING (then STARTED) and STOPPING.",
    )
    v2_ready_timeout_seconds: float = Field(
        default=6 * 3600.0,
        gt=0.0,
        description="A v2 deployment that cannot place its replicas is FAILED this long after it started.",
    )
    minute_seconds: float = Field(
        default=60.0,
        gt=0.0,
        description="Real seconds that count as one minute of an endpoint's inactive_timeout.",
    )
    catalogue_file: Path | None = Field(
        default=None,
        description="YAML or JSON file whose sections replace the built-in models, hardware, zones.",
    )
    seed: int | None = Field(default=None, description="Seed for ids, names and fault probabilities.")
    faults: list[FaultRule] = Field(default_factory=list)
    call_log_limit: int = Field(
        default=100_000,
        ge=1,
        description="The call log keeps only this many most recent calls, so long demos stay small.",
    )

    @model_validator(mode="after")
    def _needs_an_account(self) -> SimulatorConfig:
        if not self.accounts:
            raise ValueError("accounts must hold at least one API key")
        return self

    @property
    def first_api_key(self) -> str:
        return next(iter(self.accounts))

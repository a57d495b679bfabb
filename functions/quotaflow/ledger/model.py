"""The base of the pydantic models the functions define.

`defer_build`: a model's validator and serializer are built when it is first used, not when its module is
imported, so a cold start pays only for the models its first request touches (a container serves every route,
and most requests touch a handful of the ~50 models)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)

"""The base of every configuration section: unknown fields are errors, values frozen.

Below the modules whose settings are sections (the response cache's, the
configuration file's), so each can define its own without importing the others.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """Base of every config section: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

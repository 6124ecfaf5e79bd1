"""The base of every inventory model: unknown keys refused, values frozen, strings stripped."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # Unknown keys are typos more often than not: refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def _explicit(self, field: str) -> bool:
        """Set in the inventory to something other than its default. A default written out (as
        `mcpgate describe` writes every field, and the host tests load that back) changes nothing."""
        default = type(self).model_fields[field].get_default(call_default_factory=True)
        return field in self.model_fields_set and getattr(self, field) != default


def raise_all(problems: list[str]) -> None:
    """Raise every problem at once; load_stack gives each line its own entry under the field."""
    if problems:
        raise ValueError("\n".join(problems))

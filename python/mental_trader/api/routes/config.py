"""``GET /config``: the settings that are safe to show. Secrets never appear."""

from __future__ import annotations

from fastapi import APIRouter

from mental_trader.api.deps import SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["system"])


@router.get("/config", summary="Safe configuration values (secrets never)")
async def config(settings: SettingsDep) -> dict[str, object]:
    """``Settings.public_dict()``: an allow-list; a secret shows only as ``<name>_set``."""
    return settings.public_dict()

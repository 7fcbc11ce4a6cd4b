"""The registry of config presets by name, with a one-line description each. The presets
themselves live in presets.py (tables) and image_presets.py (images)."""

from __future__ import annotations

from typing import Any, Callable

from .registry import Registry

PRESETS: Registry[Callable[[], dict[str, Any]]] = Registry("preset")
DESCRIPTIONS: dict[str, str] = {}


def preset(name: str, description: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    def add(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        DESCRIPTIONS[name] = description
        return PRESETS.register(name)(fn)

    return add


def describe() -> list[tuple[str, str]]:
    return [(name, DESCRIPTIONS.get(name, "")) for name in PRESETS.names()]

"""Time as the politeness code reads it, injectable so tests can move it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
"""Seconds from an arbitrary start (``time.monotonic``); injectable so tests can move time."""
Sleep = Callable[[float], Awaitable[None]]

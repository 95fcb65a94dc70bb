"""Which agent(s) to ring for the caller at the head of a queue.  Pure functions."""
from __future__ import annotations

from typing import Mapping

from ivr.queue.agents import Agent
from ivr.queue.model import Strategy


def choose(strategy: Strategy, members: tuple[str, ...], eligible: set[str],
           agents: Mapping[str, Agent], rr_last: int) -> list[str]:
    """The agents to ring now, in the queue's config order where order matters.

    ``members`` is the queue's agent list; ``eligible`` the members free to ring now;
    ``rr_last`` the index in ``members`` of the agent round-robin rang last (-1 at start).

    - ring-all: every eligible member.
    - round-robin: the first eligible member after ``rr_last``, wrapping around
      (Asterisk ``rrmemory``); the engine moves the pointer to whoever it rings.
    - longest-idle: the eligible member whose last queue call ended longest ago; members
      who never took a call count as idle longest; ties go to config order.
    """
    if not eligible:
        return []
    if strategy is Strategy.RING_ALL:
        return [m for m in members if m in eligible]
    if strategy is Strategy.ROUND_ROBIN:
        n = len(members)
        for step in range(1, n + 1):
            name = members[(rr_last + step) % n]
            if name in eligible:
                return [name]
        return []
    if strategy is Strategy.LONGEST_IDLE:
        ranked = [(agents[m].idle_since is not None, agents[m].idle_since or 0.0, i, m)
                  for i, m in enumerate(members) if m in eligible]
        return [min(ranked)[3]]
    raise ValueError(f"unknown strategy {strategy!r}")

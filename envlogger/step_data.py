"""`StepData`: what the logger sees at every environment call."""

from __future__ import annotations

from typing import Any, NamedTuple

import dm_env


class StepData(NamedTuple):
  """One interaction between an agent and an environment, as the logger saw it.

  Attributes:
    timestep: The `dm_env.TimeStep` returned by `reset()` or `step()`.
    action: The action that *produced* `timestep` (the argument of the `step()`
      call that returned it), or `None` for the first step of an episode, which
      `reset()` produced.
    custom_data: The value `step_fn(timestep, action, env)` returned for this
      call, or `None` (no `step_fn`, or it returned `None`).
  """

  timestep: dm_env.TimeStep
  action: Any = None
  custom_data: Any = None

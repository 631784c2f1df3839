"""The schema of a log: spec nests for every stored field.

A `Schema` is what the writer needs to encode an episode and what the Reader
needs to decode it. It is stored as JSON in the dataset (see `to_json`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from envlogger import specs as specs_lib

# RLDS key names (the rlds library's constants, defined here so that neither
# rlds nor TensorFlow is imported).
STEPS = 'steps'
OBSERVATION = 'observation'
ACTION = 'action'
REWARD = 'reward'
DISCOUNT = 'discount'
IS_FIRST = 'is_first'
IS_LAST = 'is_last'
IS_TERMINAL = 'is_terminal'
# envlogger's own fields.
CUSTOM_DATA = 'custom_data'
HAS_CUSTOM_DATA = 'has_custom_data'
EPISODE_METADATA = 'episode_metadata'
HAS_EPISODE_METADATA = 'has_episode_metadata'
EPISODE_ID = 'episode_id'
RUN_ID = 'run_id'
CUT_SHORT = 'cut_short'
INVALID = 'invalid'

RESERVED_STEP_KEYS = frozenset(
  {OBSERVATION, ACTION, REWARD, DISCOUNT, IS_FIRST, IS_LAST, IS_TERMINAL, HAS_CUSTOM_DATA}
)
RESERVED_EPISODE_KEYS = frozenset({STEPS, EPISODE_ID, RUN_ID, CUT_SHORT, INVALID, HAS_EPISODE_METADATA})

# Layouts of user data: a dict's keys become fields of their own ('fields'),
# anything else is stored under one field ('value').
FIELDS = 'fields'
VALUE = 'value'


@dataclasses.dataclass(frozen=True)
class Schema:
  """Spec nests of every field of an RLDS episode written by envlogger.

  Attributes:
    observation_spec, action_spec, reward_spec, discount_spec: the env's specs.
    custom_data_spec: spec nest of `step_fn`'s values, or None if no value was
      ever stored.
    custom_data_layout: FIELDS if `step_fn` returns dicts (their keys are step
      fields), VALUE if its values are stored under the `custom_data` field.
    episode_metadata_spec, episode_metadata_layout: the same for `episode_fn`.
  """

  observation_spec: Any
  action_spec: Any
  reward_spec: Any
  discount_spec: Any
  custom_data_spec: Any = None
  custom_data_layout: str = VALUE
  episode_metadata_spec: Any = None
  episode_metadata_layout: str = VALUE

  def to_json(self) -> dict[str, Any]:
    return {
      'observation_spec': specs_lib.spec_to_json(self.observation_spec),
      'action_spec': specs_lib.spec_to_json(self.action_spec),
      'reward_spec': specs_lib.spec_to_json(self.reward_spec),
      'discount_spec': specs_lib.spec_to_json(self.discount_spec),
      'custom_data_spec': specs_lib.spec_to_json(self.custom_data_spec),
      'custom_data_layout': self.custom_data_layout,
      'episode_metadata_spec': specs_lib.spec_to_json(self.episode_metadata_spec),
      'episode_metadata_layout': self.episode_metadata_layout,
    }

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> Schema:
    return cls(
      observation_spec=specs_lib.spec_from_json(data['observation_spec']),
      action_spec=specs_lib.spec_from_json(data['action_spec']),
      reward_spec=specs_lib.spec_from_json(data['reward_spec']),
      discount_spec=specs_lib.spec_from_json(data['discount_spec']),
      custom_data_spec=specs_lib.spec_from_json(data['custom_data_spec']),
      custom_data_layout=data['custom_data_layout'],
      episode_metadata_spec=specs_lib.spec_from_json(data['episode_metadata_spec']),
      episode_metadata_layout=data['episode_metadata_layout'],
    )

  def env_specs(self) -> dict[str, Any]:
    return {
      'observation_spec': self.observation_spec,
      'action_spec': self.action_spec,
      'reward_spec': self.reward_spec,
      'discount_spec': self.discount_spec,
    }


def layout_for(value: Any) -> str:
  return FIELDS if isinstance(value, Mapping) and value else VALUE


def check_user_keys(value: Any, reserved: frozenset[str], fn_name: str) -> None:
  if isinstance(value, Mapping):
    clash = sorted(set(value) & reserved)
    if clash:
      raise specs_lib.SpecError(
        f'{fn_name} returned keys {clash} that clash with RLDS/envlogger field names '
        f'{sorted(reserved)}; rename them.'
      )

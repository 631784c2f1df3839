"""envlogger: record dm_env interactions as RLDS datasets in TFDS format.

Public API (the original EnvLogger's names):

  EnvLogger(env, data_directory=..., metadata=..., step_fn=..., episode_fn=...,
            scheduler=..., backend=..., **backend_kwargs)
  Reader(data_directory=...)   (also `from envlogger import reader; reader.Reader`)
  StepData(timestep, action, custom_data)
  schedulers: NStepScheduler, BernoulliStepScheduler, NEpisodeScheduler,
              BernoulliEpisodeScheduler, ListEpisodeScheduler

Importing envlogger does not import TensorFlow (nor TFDS: it is imported when
a TFDS log is written or read).
"""

from envlogger._jsonable import MetadataError
from envlogger._version import __version__
from envlogger.backends.base import BackendWriter, EpisodeTooLongError
from envlogger.backends.in_memory import InMemoryBackendWriter
from envlogger.backends.source import DamagedEpisodeError
from envlogger.environment_logger import BackendType, EnvLogger
from envlogger.reader import Episode, NoLogError, Reader
from envlogger.schedulers import (
  BernoulliEpisodeScheduler,
  BernoulliStepScheduler,
  ListEpisodeScheduler,
  NEpisodeScheduler,
  NStepScheduler,
)
from envlogger.specs import SpecError
from envlogger.step_data import StepData

__all__ = [
  'BackendType',
  'BackendWriter',
  'BernoulliEpisodeScheduler',
  'BernoulliStepScheduler',
  'DamagedEpisodeError',
  'EnvLogger',
  'Episode',
  'EpisodeTooLongError',
  'InMemoryBackendWriter',
  'ListEpisodeScheduler',
  'MetadataError',
  'NEpisodeScheduler',
  'NStepScheduler',
  'NoLogError',
  'Reader',
  'SpecError',
  'StepData',
  '__version__',
]


def __getattr__(name):
  # `envlogger.TFDSBackendWriter` loads TFDS only when asked for.
  if name == 'TFDSBackendWriter':
    from envlogger.backends.tfds import TFDSBackendWriter  # noqa: PLC0415

    return TFDSBackendWriter
  raise AttributeError(f'module envlogger has no attribute {name!r}')

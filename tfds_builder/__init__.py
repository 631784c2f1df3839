"""Assemble envlogger logs into one RLDS dataset that `tfds.load` reads.

  from tfds_builder import BuildConfig, build
  build(BuildConfig(name='my_rl_data', sources=['/logs/run_*'], splits={'train': 0.9, 'test': 0.1}),
        data_dir='/datasets')
  # then, anywhere: tfds.load('my_rl_data', data_dir='/datasets')

Imports TensorFlow Datasets (unlike `envlogger` itself).
"""

from tfds_builder.builder import EnvloggerRlds, SourceError, build, builder_class
from tfds_builder.config import BuildConfig

__all__ = ['BuildConfig', 'EnvloggerRlds', 'SourceError', 'build', 'builder_class']

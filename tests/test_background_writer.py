"""Write errors reach the caller at a step; the background writer (async_writes=True)."""

from __future__ import annotations

import threading

import pytest

import envlogger
from envlogger.backends import _worker
from envlogger.testing import catch_env


class _FailingBackend(envlogger.InMemoryBackendWriter):
  """Stores episodes in memory but fails to write the second one."""

  def _write_episode(self, episode):
    if len(self.episodes) == 1 and not getattr(self, '_failed', False):
      self._failed = True
      raise OSError(28, 'No space left on device (simulated by a backend subclass)')
    super()._write_episode(episode)


def _episode(env):
  ts = env.reset()
  while not ts.last():
    ts = env.step(1)


def test_write_error_surfaces_at_the_step_that_ends_the_episode_by_default():
  backend = _FailingBackend()
  env = envlogger.EnvLogger(catch_env.Catch(), backend=backend)
  _episode(env)
  ts = env.reset()
  with pytest.raises(OSError, match='No space left'):
    while not ts.last():
      ts = env.step(1)
  _episode(env)  # the logger keeps working after reporting the error
  env.close()
  assert len(backend.episodes) == 2


def test_async_write_error_surfaces_at_next_step_and_keeps_earlier_episodes():
  backend = _FailingBackend(async_writes=True)
  env = envlogger.EnvLogger(catch_env.Catch(), backend=backend)
  _episode(env)
  _episode(env)  # its write fails in the background
  # Let the background batch run (the test reaches into the worker for timing only).
  backend._worker.dispatch()
  backend._worker._queue.join()
  with pytest.raises(_worker.WriteError, match='No space left') as err:
    env.reset()
  assert 'episode' in str(err.value)
  _episode(env)  # the logger keeps working after reporting the error
  env.close()
  assert len(backend.episodes) == 2


def test_async_write_error_surfaces_at_flush():
  backend = _FailingBackend(async_writes=True)
  env = envlogger.EnvLogger(catch_env.Catch(), backend=backend)
  _episode(env)
  _episode(env)
  with pytest.raises(_worker.WriteError, match='No space left'):
    backend.flush()
  env.close()
  assert len(backend.episodes) == 1


def test_writes_happen_off_the_calling_thread_in_order():
  threads = []

  class Backend(envlogger.InMemoryBackendWriter):
    def _write_episode(self, episode):
      threads.append(threading.current_thread().name)
      super()._write_episode(episode)

  backend = Backend(async_writes=True, max_queued_batches=1)
  with envlogger.EnvLogger(catch_env.Catch(), backend=backend) as env:
    for _ in range(20):
      _episode(env)
  assert set(threads) == {'envlogger-writer'}
  ids = [e.episode_id for e in backend.episodes]
  assert ids == [f'{backend.run_id}/{i}' for i in range(20)]


def test_synchronous_writes_by_default():
  backend = envlogger.InMemoryBackendWriter()
  env = envlogger.EnvLogger(catch_env.Catch(), backend=backend)
  _episode(env)
  assert len(backend.episodes) == 1  # written before step() returned
  env.close()

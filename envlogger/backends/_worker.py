"""A background thread that runs the writer's jobs in order, in batches.

Finished episodes are encoded, compressed and written here, so the
env loop does not wait for them. Jobs are handed over in batches (up to
`batch_jobs` jobs or `batch_bytes` bytes): waking a thread costs ~60 us of
GIL and futex traffic per hand-off on this class of machine (measured: a
hand-off every 10 steps cost 6 us per step), which is as much as a whole
10-step Catch episode costs to encode. The queue of batches is bounded: when
it is full, `submit` blocks (back-pressure), so memory stays bounded by the
episode in flight, the batch being filled and `max_queued` batches.
An exception in a job is kept and re-raised by the next `check()` (the
logger calls it at every step), and by `drain()`/`close()`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class WriteError(RuntimeError):
  """Writing an episode in the background failed; raised at the next call."""


class Worker:
  """Runs submitted callables in a background thread (or inline if not `asynchronous`)."""

  def __init__(
    self,
    asynchronous: bool = True,
    max_queued: int = 2,
    batch_jobs: int = 64,
    batch_bytes: int = 8 << 20,
    name: str = 'envlogger-writer',
  ):
    self.asynchronous = asynchronous
    self.error: tuple[str, BaseException] | None = None
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queued)))
    self._name = name
    self._thread: threading.Thread | None = None
    self._batch: list[tuple[Callable[[], None], str]] = []
    self._batch_bytes = 0
    self._max_jobs = max(1, int(batch_jobs))
    self._max_bytes = int(batch_bytes)

  def submit(self, job: Callable[[], None], what: str, nbytes: int = 0) -> None:
    """Runs `job` (described by `what` in errors) after the jobs before it.

    `nbytes` (the memory the job holds) counts towards dispatching the batch.
    """
    self.check()
    if not self.asynchronous:
      job()
      return
    self._batch.append((job, what))
    self._batch_bytes += nbytes
    if len(self._batch) >= self._max_jobs or self._batch_bytes >= self._max_bytes:
      self.dispatch()

  def dispatch(self) -> None:
    """Hands the batch being filled to the thread now."""
    if not self._batch:
      return
    batch, self._batch, self._batch_bytes = self._batch, [], 0
    if self._thread is None:
      self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
      self._thread.start()
    self._queue.put(batch)

  def check(self) -> None:
    """Raises WriteError if a background job failed since the last check."""
    if self.error is not None:
      what, exc = self.error
      self.error = None
      raise WriteError(f'{what} failed in the background writer: {exc!r}') from exc

  def drain(self) -> None:
    """Waits until every submitted job has run, then raises any failure."""
    self.dispatch()
    if self._thread is not None:
      self._queue.join()
    self.check()

  def close(self) -> None:
    """Runs the remaining jobs and stops the thread; raises any failure."""
    self.dispatch()
    if self._thread is not None:
      self._queue.put(None)
      self._thread.join()
      self._thread = None
    self.check()

  def _run(self) -> None:
    while True:
      item = self._queue.get()
      try:
        if item is None:
          return
        for job, what in item:
          try:
            job()
          except BaseException as e:  # noqa: BLE001 (reported to the caller at its next step)
            if self.error is None:
              self.error = (what, e)
      finally:
        self._queue.task_done()

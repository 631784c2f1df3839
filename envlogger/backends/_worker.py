"""A background thread that runs the writer's jobs in order.

Finished episodes are stacked, encoded, compressed and written here, so the
env loop does not wait for them. The queue is bounded: when it is full,
`submit` blocks (back-pressure), so memory stays bounded by the episode in
flight plus `max_queued` finished episodes plus the one being written. An
exception in a job is kept and re-raised by the next `check()` (the logger
calls it at every step), and by `close()`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class WriteError(RuntimeError):
  """Writing an episode in the background failed; raised at the next call."""


class Worker:
  """Runs submitted callables in a background thread (or inline if not `asynchronous`)."""

  def __init__(self, asynchronous: bool = True, max_queued: int = 2, name: str = 'envlogger-writer'):
    self.asynchronous = asynchronous
    self.error: tuple[str, BaseException] | None = None
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queued)))
    self._name = name
    self._thread: threading.Thread | None = None

  def submit(self, job: Callable[[], None], what: str) -> None:
    """Runs `job` (described by `what` in errors) after the jobs before it."""
    self.check()
    if not self.asynchronous:
      job()
      return
    if self._thread is None:
      self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
      self._thread.start()
    self._queue.put((job, what))

  def check(self) -> None:
    """Raises WriteError if a background job failed since the last check."""
    if self.error is not None:
      what, exc = self.error
      self.error = None
      raise WriteError(f'{what} failed in the background writer: {exc!r}') from exc

  def drain(self) -> None:
    """Waits until every submitted job has run, then raises any failure."""
    if self._thread is not None:
      self._queue.join()
    self.check()

  def close(self) -> None:
    """Runs the remaining jobs and stops the thread; raises any failure."""
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
        job, what = item
        try:
          job()
        except BaseException as e:  # noqa: BLE001 (reported to the caller at its next step)
          if self.error is None:
            self.error = (what, e)
      finally:
        self._queue.task_done()

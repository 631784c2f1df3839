"""A background thread that runs the writer's jobs in order, in batches.

Finished episodes are encoded, compressed and written here, so the
env loop does not wait for them. Jobs are handed over in batches (up to
`batch_jobs` jobs or `batch_bytes` bytes, or when the batch is `max_delay`
seconds old: the thread takes it then): waking a thread costs ~60 us of
GIL and futex traffic per hand-off on this class of machine (measured: a
hand-off every 10 steps cost 6 us per step), which is as much as a whole
10-step Catch episode costs to encode. The queue of batches is bounded: when
it is full, `submit` blocks (back-pressure), so memory stays bounded by the
episode in flight, the batch being filled and `max_queued` batches.
An exception in a job is kept and re-raised by the next `check()` (the
logger calls it at every step), and by `drain()`/`close()`. `after_batch`, if
set, runs in the thread after each batch and when the thread is idle (its
errors are reported the same way).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable


class WriteError(RuntimeError):
  """Writing an episode in the background failed; raised at the next call."""


class WriteOSError(OSError, WriteError):
  """A `WriteError` caused by an `OSError` (disk full, file too large, ...):
  `except OSError` catches it as it catches the same error in the step."""


class Worker:
  """Runs submitted callables in a background thread (or inline if not `asynchronous`)."""

  def __init__(
    self,
    asynchronous: bool = True,
    max_queued: int = 2,
    batch_jobs: int = 64,
    batch_bytes: int = 8 << 20,
    max_delay: float = 1.0,
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
    self._max_delay = float(max_delay)
    self._batch_since = 0.0
    self._lock = threading.Lock()  # the batch being filled: the thread takes it when it is old
    self.after_batch: Callable[[], None] | None = None

  def submit(self, job: Callable[[], None], what: str, nbytes: int = 0) -> None:
    """Runs `job` (described by `what` in errors) after the jobs before it.

    `nbytes` (the memory the job holds) counts towards dispatching the batch.
    """
    self.check()
    if not self.asynchronous:
      job()
      return
    with self._lock:
      if not self._batch:
        self._batch_since = time.monotonic()
      self._batch.append((job, what))
      self._batch_bytes += nbytes
      full = len(self._batch) >= self._max_jobs or self._batch_bytes >= self._max_bytes
    if full:
      self.dispatch()
    elif self._thread is None:
      self._start()

  def dispatch(self) -> None:
    """Hands the batch being filled to the thread now."""
    with self._lock:
      if not self._batch:
        return
      batch, self._batch, self._batch_bytes = self._batch, [], 0
    if self._thread is None:
      self._start()
    self._queue.put(batch)  # blocks while the queue is full (back-pressure), outside the lock

  def _start(self) -> None:
    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
    self._thread.start()

  def _take_old_batch(self) -> None:
    """In the thread, when idle: queues the batch being filled if it is old.

    Queued under the lock (the queue is empty: the thread is idle), so `drain`
    cannot miss it, and no batch the caller dispatches can overtake it.
    """
    with self._lock:
      if self._batch and time.monotonic() - self._batch_since >= self._max_delay:
        try:
          self._queue.put_nowait(self._batch)
        except queue.Full:  # the caller dispatched meanwhile: the thread has work
          return
        self._batch, self._batch_bytes = [], 0

  def check(self) -> None:
    """Raises WriteError if a background job failed since the last check."""
    if self.error is not None:
      what, exc = self.error
      self.error = None
      message = f'{what} failed in the background writer: {exc!r}'
      if isinstance(exc, OSError):
        raise WriteOSError(exc.errno, message) from exc
      raise WriteError(message) from exc

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
      try:
        item = self._queue.get(timeout=self._max_delay)
      except queue.Empty:
        self._take_old_batch()
        self._run_job(self.after_batch, 'writing episodes')
        continue
      try:
        if item is None:
          return
        for job, what in item:
          self._run_job(job, what)
        self._run_job(self.after_batch, 'writing episodes')
      finally:
        self._queue.task_done()

  def _run_job(self, job: Callable[[], None] | None, what: str) -> None:
    if job is None:
      return
    try:
      job()
    except BaseException as e:  # noqa: BLE001 (reported to the caller at its next step)
      if self.error is None:
        self.error = (what, e)

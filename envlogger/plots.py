"""Pictures of a log: returns and lengths over the episodes, and one episode's observations.

Needs matplotlib and Pillow (`pip install 'envlogger-rlds[plot]'`); imported
only by these functions.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tree

from envlogger import specs as specs_lib
from envlogger.reader import Reader

_HINT = "pip install 'envlogger-rlds[plot]' (matplotlib and Pillow)"


def _pyplot():
  try:
    import matplotlib  # noqa: PLC0415

    matplotlib.use('Agg')  # files only: no display needed
    import matplotlib.pyplot as plt  # noqa: PLC0415
  except ImportError as e:
    raise ImportError(f'plotting needs matplotlib: {_HINT}') from e
  return plt


def _pil():
  try:
    from PIL import Image  # noqa: PLC0415
  except ImportError as e:
    raise ImportError(f'writing images needs Pillow: {_HINT}') from e
  return Image


def plot_log(data_directory: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
  """Writes a PNG of every episode's return (sum of its rewards, all reward
  leaves summed) and length, in log order. Returns {'episodes', 'returns', 'lengths'}."""
  plt = _pyplot()
  with Reader(data_directory) as r:
    lengths = r.episode_lengths()
    returns = np.asarray(
      [sum(float(np.sum(x)) for x in tree.flatten(ep.as_rlds()['steps']['reward'])) for ep in r.episodes]
    )
  fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
  x = np.arange(len(lengths))
  top.plot(x, returns, '.', markersize=3, alpha=0.6, label='episode return')
  if len(returns) >= 10:
    w = max(len(returns) // 20, 5)
    top.plot(x[w - 1 :], np.convolve(returns, np.ones(w) / w, mode='valid'), label=f'mean of {w}')
  top.set_ylabel('return')
  top.legend(loc='best')
  bottom.plot(x, lengths, '.', markersize=3)
  bottom.set_ylabel('steps')
  bottom.set_xlabel('episode')
  fig.suptitle(os.fspath(data_directory), fontsize=9)
  fig.tight_layout()
  fig.savefig(os.fspath(out), dpi=100)
  plt.close(fig)
  return {'episodes': len(lengths), 'returns': returns, 'lengths': lengths}


def _is_image(spec: Any) -> bool:
  shape = tuple(spec.shape)
  return np.dtype(spec.dtype) == np.uint8 and (
    len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4))
  )


def show_episode(data_directory: str | os.PathLike, episode: int, out: str | os.PathLike) -> dict[str, Any]:
  """Writes one episode's observations to `out`.

  Image observations (uint8 leaves of shape (H, W) or (H, W, 1|3|4); the
  first one if several): `.gif` gives an animation (one frame per step),
  `.png` a contact sheet (a grid of the frames, at most 64, evenly spaced).
  Other observations: a PNG of every leaf over the steps (one line per
  element, up to 16 per leaf).

  Returns:
    {'kind': 'gif' | 'contact sheet' | 'plot', 'frames': number of frames or steps, 'leaf': name}.

  Raises:
    IndexError: no such episode. ValueError: the output kind does not fit the observations.
  """
  out = os.fspath(out)
  ext = os.path.splitext(out)[1].lower()
  if ext not in ('.gif', '.png'):
    raise ValueError(f'{out}: write a .gif or a .png')
  with Reader(data_directory) as r:
    n = len(r.episodes)
    if not -n <= episode < n:
      raise IndexError(f'episode {episode} out of range: the log has {n} episodes')
    leaves = specs_lib.flatten_with_names(r.observation_spec())
    obs = tree.flatten(r.episodes[episode].as_rlds()['steps']['observation'])
  images = [(name, col) for (name, spec), col in zip(leaves, obs) if _is_image(spec)]
  if images:
    name, frames = images[0]
    if frames.ndim == 4 and frames.shape[-1] == 1:
      frames = frames[..., 0]
    if ext == '.gif':
      image = _pil()
      pics = [image.fromarray(f) for f in frames]
      pics[0].save(out, save_all=True, append_images=pics[1:], duration=80, loop=0)
      return {'kind': 'gif', 'frames': len(pics), 'leaf': name or 'observation'}
    return {'kind': 'contact sheet', 'frames': _contact_sheet(frames, out), 'leaf': name or 'observation'}
  if ext == '.gif':
    raise ValueError('the observations hold no image (uint8 H x W [x C]): write a .png plot instead')
  plt = _pyplot()
  fig, axes = plt.subplots(len(obs), 1, figsize=(8, 2 + 1.6 * len(obs)), sharex=True, squeeze=False)
  for ax, (name, _), col in zip(axes[:, 0], leaves, obs):
    values = np.asarray(col, dtype=float).reshape(len(col), -1)[:, :16] if col.dtype != object else None
    if values is not None:
      ax.plot(values)
    ax.set_ylabel(name or 'observation', fontsize=8)
  axes[-1, 0].set_xlabel('step')
  fig.suptitle(f'{os.fspath(data_directory)}: episode {episode}', fontsize=9)
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return {
    'kind': 'plot',
    'frames': len(obs[0]) if obs else 0,
    'leaf': ', '.join(n or 'observation' for n, _ in leaves),
  }


def _contact_sheet(frames: np.ndarray, out: str, max_frames: int = 64) -> int:
  image = _pil()
  pick = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int))
  frames = frames[pick]
  cols = int(np.ceil(np.sqrt(len(frames))))
  rows = int(np.ceil(len(frames) / cols))
  h, w = frames.shape[1:3]
  sheet = np.zeros((rows * (h + 2), cols * (w + 2), *frames.shape[3:]), dtype=np.uint8)
  for i, f in enumerate(frames):
    y, x = divmod(i, cols)
    sheet[y * (h + 2) : y * (h + 2) + h, x * (w + 2) : x * (w + 2) + w] = f
  image.fromarray(sheet).save(out)
  return len(frames)

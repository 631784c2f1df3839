"""`python -m tfds_builder` and TFDS's own `tfds build` on a generated dataset module (real builds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, log_catch_actor, steps_by_episode

pytestmark = pytest.mark.slow
tfds_builder = pytest.importorskip('tfds_builder', reason='tfds_builder ships with this repository')
pytest.importorskip('mlcroissant', reason="TFDS's `tfds` command imports mlcroissant at start")
pytest.importorskip('apache_beam', reason="TFDS's `tfds` command imports Apache Beam at start")

from tfds_builder import cli  # noqa: E402


def _expected_steps(sources) -> dict[str, dict]:
  return steps_by_episode(sources, ('observation', 'action', 'reward', 'discount', 'row', 'is_terminal'))


def _load_splits_in_fresh_process(shared_python, data_dir, name: str, splits) -> dict[str, dict]:
  """Split -> episode id -> steps, from `tfds.load` in a process without envlogger or tfds_builder."""
  code = f"""
import json, sys
import tensorflow as tf
import tensorflow_datasets as tfds
out = {{}}
for split in {list(splits)!r}:
  out[split] = {{}}
  for ep in tfds.load({name!r}, data_dir={str(data_dir)!r}, split=split):
    s = tf.nest.map_structure(lambda t: t.numpy().tolist(), next(iter(ep['steps'].batch(100000))))
    keys = ('observation', 'action', 'reward', 'discount', 'row', 'is_terminal')
    out[split][ep['episode_id'].numpy().decode()] = {{k: s[k] for k in keys}}
assert 'envlogger' not in sys.modules and 'tfds_builder' not in sys.modules
print(json.dumps(out))
"""
  proc = shared_python.run(code)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _one_line_error(capsys, argv) -> str:
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.out == ''
  lines = captured.err.splitlines()
  assert len(lines) == 1 and lines[0].startswith('tfds_builder: '), captured.err
  return lines[0]


def test_config_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
  missing = str(tmp_path / 'nope.json')
  for command in ('build', 'new-module'):
    assert 'cannot read config' in _one_line_error(capsys, [command, missing, str(tmp_path / 'out')])
  cases = {
    '{"name": "x", "sources": ["a"]': 'is not JSON',
    '["name"]': 'is not a JSON object',
    '{"name": "Bad Name", "sources": ["a"]}': 'name must be snake_case',
    '{"name": "x", "sources": ["a"], "verison": "1.0.0"}': "unknown keys ['verison']",
    '{"name": "x", "sources": []}': 'sources is empty',
    '{"name": "x", "sources": ["a"], "splits": {"train": 0.5}}': 'sum to 1',
  }
  for k, (text, message) in enumerate(cases.items()):
    path = tmp_path / f'bad{k}.json'
    path.write_text(text)
    line = _one_line_error(capsys, ['new-module', str(path), str(tmp_path / 'mod')])
    assert str(path) in line and message in line, line
  assert not (tmp_path / 'mod').exists()
  # A module is not overwritten unless asked.
  good = tmp_path / 'good.json'
  good.write_text('{"name": "catch_ok", "sources": ["logs"]}')
  assert cli.main(['new-module', str(good), str(tmp_path / 'mod')]) == 0
  capsys.readouterr()
  assert 'already holds' in _one_line_error(capsys, ['new-module', str(good), str(tmp_path / 'mod')])
  assert cli.main(['new-module', str(good), str(tmp_path / 'mod'), '--overwrite']) == 0
  capsys.readouterr()
  # A name Python already imports would be imported by tfds build instead of the module.
  taken = tmp_path / 'taken.json'
  taken.write_text('{"name": "envlogger", "sources": ["logs"]}')
  assert 'already importable' in _one_line_error(capsys, ['new-module', str(taken), str(tmp_path / 'mod')])
  # The same from a real `python -m tfds_builder` process.
  proc = subprocess.run(
    [sys.executable, '-m', 'tfds_builder', 'build', missing, str(tmp_path / 'out')],
    capture_output=True,
    text=True,
    cwd=REPO,
    timeout=300,
  )
  assert proc.returncode == 2 and proc.stdout == ''
  assert proc.stderr.strip().splitlines()[-1].startswith(f'tfds_builder: cannot read config {missing}')


def test_tfds_build_of_a_generated_module(tmp_path, capsys, shared_python):
  """`tfds build OUT/<name> --data_dir D` builds what `build(config, D)` does; tfds.load reads it."""
  sources = [tmp_path / 'logs' / f'actor{k}' for k in range(2)]
  for k, d in enumerate(sources):
    log_catch_actor(d, seed=k, episodes=3)
  config_path = tmp_path / 'config' / 'catch_cli.json'
  config_path.parent.mkdir()
  config_path.write_text(
    json.dumps(
      {
        'name': 'catch_cli',
        'version': '1.2.0',
        'sources': ['../logs/actor*'],  # relative to the config file
        'splits': {'train': 0.5, 'test': 0.5},
        'description': 'Catch, two actors.',
        'episodes_per_shard': 2,
      }
    )
  )
  assert cli.main(['new-module', str(config_path), str(tmp_path / 'modules')]) == 0
  module_dir = tmp_path / 'modules' / 'catch_cli'
  assert f'tfds build {module_dir} --data_dir DATA_DIR' in capsys.readouterr().out
  assert sorted(os.listdir(module_dir)) == ['__init__.py', 'catch_cli_dataset_builder.py']

  data_dir = tmp_path / 'data'
  # TFDS's own command line, run in this process (a process of its own would
  # import TensorFlow, Beam and mlcroissant again: minutes on the CI machine).
  from tensorflow_datasets.scripts.cli import main as tfds_cli  # noqa: PLC0415

  tfds_cli.main(tfds_cli._parse_flags(['tfds', 'build', str(module_dir), '--data_dir', str(data_dir)]))

  config = tfds_builder.BuildConfig.from_file(config_path)
  opened, _ = tfds_builder.builder.open_sources(config)
  want_splits = {
    split: {opened[si].read_episode_id(ei) for si, ei in refs}
    for split, refs in tfds_builder.builder.assign_splits(config, opened).items()
  }
  for src in opened:
    src.close()
  got = _load_splits_in_fresh_process(shared_python, data_dir, 'catch_cli', ['train', 'test'])
  assert {split: set(eps) for split, eps in got.items()} == want_splits  # the splits build() makes
  assert {**got['train'], **got['test']} == _expected_steps(sources)  # every step of every episode, once
  info = json.loads((data_dir / 'catch_cli' / '1.2.0' / 'dataset_info.json').read_text())
  assert info['moduleName'] == 'tfds_builder'  # as from build()
  assert 'Catch, two actors.' in info['description']
  assert [len(s['shardLengths']) for s in info['splits']] == [2, 2]  # episodes_per_shard: 3 episodes -> 2

"""envlogger._riegeli: the pure-Python Riegeli/records reader.

Ground truth: the files written by DeepMind's envlogger 1.3 (riegeli's C++,
transposed brotli chunks) in `tests/fixtures/envlogger13/catch_riegeli/data`,
whose step records `expected.json` holds byte for byte; files written by the
test writer `riegeli_testing` (simple chunks, every compression, > 64 KiB);
and HighwayHash's published test vectors.
"""

from __future__ import annotations

import base64
import io
import json
import pathlib
import random
import struct
import subprocess
import sys

import pytest
import riegeli_testing as rt

from envlogger._riegeli import compression, highwayhash, transpose
from envlogger._riegeli.records import (
  BLOCK_SIZE,
  FILE_SIGNATURE,
  ChunkInfo,
  RecordReader,
  RiegeliError,
  _add_with_overhead,
  _chunk_end,
)

FIXTURE = pathlib.Path(__file__).parent / 'fixtures' / 'envlogger13' / 'catch_riegeli'
DATA = FIXTURE / 'data'
SHARD = next(p for p in DATA.iterdir() if p.is_dir())
STEPS = SHARD / 'steps.riegeli'


@pytest.fixture(scope='module')
def expected_steps() -> list[bytes]:
  expected = json.loads((FIXTURE / 'expected.json').read_text())
  return [base64.b64decode(s['raw_record_b64']) for s in expected['steps']]


@pytest.fixture(scope='module')
def steps_bytes() -> bytes:
  return STEPS.read_bytes()


def read_all(data: bytes, **kwargs) -> tuple[list[tuple[int, bytes]], list[str]]:
  r = RecordReader(io.BytesIO(data), **kwargs)
  return list(r.records_with_positions()), r.problems


# --- A minimal protobuf wire-format walker (to check records are protos). ---


def parse_wire(buf: bytes) -> list[tuple[int, int, object]]:
  """(field, wire type, value) of every field; raises ValueError if `buf` is not wire format."""
  out = []
  i = 0
  while i < len(buf):
    key, i = compression.read_varint64(buf, i)
    field, wire = key >> 3, key & 7
    if field == 0:
      raise ValueError('field 0')
    if wire == 0:
      value, i = compression.read_varint64(buf, i)
    elif wire == 1:
      value, i = buf[i : i + 8], i + 8
    elif wire == 5:
      value, i = buf[i : i + 4], i + 4
    elif wire == 2:
      n, i = compression.read_varint64(buf, i)
      value, i = buf[i : i + n], i + n
    else:
      raise ValueError(f'wire type {wire}')
    if i > len(buf):
      raise ValueError('truncated')
    out.append((field, wire, value))
  return out


def datum_int64s(record: bytes) -> tuple[list[int], list[int]]:
  """(shape dims, int64 values) of an envlogger.Datum (shape = 1 {dim = 1 {size = 1}}, values = 2 {int64 = 4})."""
  dims: list[int] = []
  values: list[int] = []
  for field, _, value in parse_wire(record):
    if field == 1:
      for _, _, dim in parse_wire(value):
        for f, _, size in parse_wire(dim):
          if f == 1:
            dims.append(size - (1 << 64) if size >> 63 else size)
    elif field == 2:
      for f, wire, v in parse_wire(value):
        if f == 4 and wire == 2:  # packed
          j = 0
          while j < len(v):
            x, j = compression.read_varint64(v, j)
            values.append(x - (1 << 64) if x >> 63 else x)
        elif f == 4:
          values.append(v - (1 << 64) if v >> 63 else v)
  return dims, values


# --- HighwayHash. ---

# HighwayHash-64 of bytes(range(n)) under the key 0x0706050403020100, ... (google/highwayhash test vectors).
_HH_KEY = (0x0706050403020100, 0x0F0E0D0C0B0A0908, 0x1716151413121110, 0x1F1E1D1C1B1A1918)
_HH_VECTORS = {
  0: 0x907A56DE22C26E53,
  1: 0x7EAB43AAC7CDDD78,
  2: 0xB8D0569AB0B53D62,
  3: 0x5C6BEFAB8A463D80,
  4: 0xF205A46893007EDA,
  7: 0x4D02AE1738F59482,
  15: 0x40793F86A449F33B,
  16: 0xCFAB3489F97EB832,
  17: 0x19FE67D2C8C5C0E2,
  20: 0x38AD9B1141D3DD16,
  31: 0x9FC7007CCF035A68,
  32: 0xA0C964D9ECD580FC,
  33: 0x2C90F73CA03181FC,
  47: 0x1326BAC06B911E08,
  63: 0xAB8EEBE9BF2139A0,
  64: 0x75542C5D4CD2A6FF,
}


@pytest.mark.parametrize('n', sorted(_HH_VECTORS))
def test_highwayhash_published_vectors(n):
  assert highwayhash.hash64(bytes(range(n)), _HH_KEY) == _HH_VECTORS[n]


def test_highwayhash_other_key_and_riegeli_signature():
  assert highwayhash.hash64(bytes(range(128, 161)), (1, 2, 3, 4)) == 0x53C516CCE478CAD7
  # The file signature stores the hashes of an empty chunk's data, of the block
  # header (previous 0, next 64) and of the chunk header.
  assert highwayhash.riegeli_hash(b'') == int.from_bytes(FILE_SIGNATURE[40:48], 'little')
  assert highwayhash.riegeli_hash(FILE_SIGNATURE[8:24]) == int.from_bytes(FILE_SIGNATURE[0:8], 'little')
  assert highwayhash.riegeli_hash(FILE_SIGNATURE[32:64]) == int.from_bytes(FILE_SIGNATURE[24:32], 'little')


def test_highwayhash_accepts_buffers():
  data = bytes(range(256)) * 3
  assert highwayhash.riegeli_hash(memoryview(data)) == highwayhash.riegeli_hash(bytearray(data))


# --- Compression. ---


@pytest.mark.parametrize('kind', rt.COMPRESSIONS)
def test_compression_roundtrip_and_damage(kind):
  raw = bytes(range(256)) * 40 + b'riegeli' * 100
  ct = rt.compression_byte(kind)
  block = rt.compress_block(kind, raw)
  assert compression.decompress(ct, block) == raw
  if kind == 'none':
    return
  # Wrong declared size, truncated stream, garbage: CompressionError, nothing else.
  wrong_size = rt.varint(len(raw) + 1) + block[len(rt.varint(len(raw))) :]
  with pytest.raises(compression.CompressionError):
    compression.decompress(ct, wrong_size)
  with pytest.raises(compression.CompressionError):
    compression.decompress(ct, block[: len(block) // 2])
  with pytest.raises(compression.CompressionError):
    compression.decompress(ct, rt.varint(100) + b'\xff' * 50)


def test_compression_unknown_type_and_bad_varint():
  with pytest.raises(compression.CompressionError, match='unknown compression type'):
    compression.decompress(0x41, b'\x00')
  with pytest.raises(compression.CompressionError):
    compression.decompress(compression.BROTLI, b'\xff' * 11)
  assert compression.read_varint64(b'\xac\x02', 0) == (300, 2)
  with pytest.raises(compression.CompressionError):
    compression.read_varint64(b'\x80\x80', 0)


def test_missing_codec_names_the_pip_package(monkeypatch):
  monkeypatch.setitem(sys.modules, 'brotli', None)  # makes `import brotli` fail
  monkeypatch.setattr(compression, '_codecs', {})
  with pytest.raises(compression.MissingCodecError, match='pip install brotli'):
    compression.decompress(compression.BROTLI, b'\x05abc')
  monkeypatch.setitem(sys.modules, 'zstandard', None)
  with pytest.raises(compression.MissingCodecError, match='pip install zstandard'):
    compression.decompress(compression.ZSTD, b'\x01\x00')


def test_missing_codec_is_raised_by_the_reader_not_reported_as_damage(monkeypatch):
  monkeypatch.setitem(sys.modules, 'brotli', None)
  monkeypatch.setattr(compression, '_codecs', {})
  with RecordReader(STEPS) as r, pytest.raises(compression.MissingCodecError):
    list(r)


@pytest.mark.slow
def test_import_envlogger_does_not_import_the_reader_or_codecs():
  code = (
    'import sys, envlogger\n'
    "bad = [m for m in ('envlogger._riegeli.records', 'brotli', 'zstandard', 'snappy') if m in sys.modules]\n"
    'assert not bad, bad\n'
  )
  subprocess.run([sys.executable, '-c', code], check=True)


# --- The envlogger 1.3 fixture (riegeli's C++ writer, transposed brotli chunks). ---


def test_fixture_steps_records_exact(expected_steps):
  with RecordReader(STEPS) as r:
    assert list(r) == expected_steps
    assert r.problems == []
    chunks = list(r.chunks())
  assert chunks == [
    ChunkInfo(0, 64, 's', 0, 0, 0),
    ChunkInfo(64, 718, 't', 50, sum(map(len, expected_steps)), 614),
  ]


def test_fixture_every_file_parses_as_protobuf_records():
  counts = {}
  for path in sorted(DATA.rglob('*.riegeli')):
    with RecordReader(path) as r:
      records = list(r)
      assert r.problems == []
      assert {c.chunk_type for c in r.chunks()} <= {'s', 't'}
    for record in records:
      assert parse_wire(record)
    counts[path.name] = len(records)
  assert counts == {
    'metadata.riegeli': 1,
    'steps.riegeli': 50,
    'step_offsets.riegeli': 1,
    'episode_index.riegeli': 2,
    'episode_metadata.riegeli': 5,
  }


def test_fixture_step_offsets_are_record_positions(expected_steps):
  with RecordReader(SHARD / 'step_offsets.riegeli') as r:
    offsets = [v for record in r for v in datum_int64s(record)[1]]
  assert len(offsets) == 50
  with RecordReader(STEPS) as r:
    assert [p for p, _ in r.records_with_positions()] == offsets
  # Random access, in order, shuffled, and repeated, on a fresh reader each time.
  with RecordReader(STEPS) as r:
    assert [r.read_at(p) for p in offsets] == expected_steps
  order = list(range(50))
  random.Random(0).shuffle(order)
  with RecordReader(STEPS) as r:
    for i in order:
      assert r.read_at(offsets[i]) == expected_steps[i]


def test_fixture_episode_index_rows():
  with RecordReader(SHARD / 'episode_index.riegeli') as r:
    rows = []
    for record in r:
      dims, values = datum_int64s(record)
      assert dims[-1] == 2 and len(values) == 2 * dims[0]
      rows += [values[i : i + 2] for i in range(0, len(values), 2)]
  assert len(rows) == 5
  starts = [row[0] for row in rows]
  assert starts == sorted(starts) and starts[0] == 0
  # Their metadata positions point at the 5 records of episode_metadata.riegeli.
  with RecordReader(SHARD / 'episode_metadata.riegeli') as r:
    positions = [p for p, _ in r.records_with_positions()]
    assert [row[1] for row in rows] == positions
    for p in positions:
      assert parse_wire(r.read_at(p))


def test_read_at_rejects_non_record_positions():
  with RecordReader(STEPS) as r:
    for position in (-1, 0, 63, 114, 717, 718, 10**9):
      with pytest.raises(RiegeliError, match='steps.riegeli'):
        r.read_at(position)
    assert r.problems == []


def test_transposed_decoding_is_repeatable(steps_bytes, expected_steps):
  # The first record of each shape is interpreted, later ones run compiled code
  # (kept across chunks): every way gives the same records.
  chunk = steps_bytes[64 + 40 : 718]
  for _ in range(5):
    assert transpose.decode_transposed(chunk, 50, 18750) == expected_steps
  transpose._PROGRAMS.clear()
  assert transpose.decode_transposed(chunk, 50, 18750) == expected_steps


# --- Transposed chunks with every compression (re-packed from the fixture). ---


def repack_transposed(data: bytes, kind: str) -> bytes:
  """The fixture's transposed chunk data with its blocks decompressed and re-compressed as `kind`."""
  ct = data[0]
  header_size, pos = compression.read_varint64(data, 1)
  header = compression.decompress(ct, data[pos : pos + header_size])
  pos += header_size
  num_buckets, h = compression.read_varint64(header, 0)
  num_buffers, h = compression.read_varint64(header, h)
  buckets = []
  for _ in range(num_buckets):
    size, h = compression.read_varint64(header, h)
    buckets.append(compression.decompress(ct, data[pos : pos + size]))
    pos += size
  transitions = compression.decompress(ct, data[pos:])
  new_buckets = [rt.compress_block(kind, b) for b in buckets]
  new_header = rt.varint(num_buckets) + rt.varint(num_buffers)
  new_header += b''.join(rt.varint(len(b)) for b in new_buckets) + header[h:]
  new_header = rt.compress_block(kind, new_header)
  return (
    bytes((rt.compression_byte(kind),))
    + rt.varint(len(new_header))
    + new_header
    + b''.join(new_buckets)
    + rt.compress_block(kind, transitions)
  )


@pytest.mark.parametrize('kind', rt.COMPRESSIONS)
def test_transposed_chunk_every_compression(steps_bytes, expected_steps, kind):
  data = repack_transposed(steps_bytes[104:718], kind)
  assert transpose.decode_transposed(data, 50, 18750) == expected_steps
  # The same chunk inside a file (written by the test writer as a 't' chunk).
  w = rt.Writer()
  begin = w.add_chunk(b't', data, 50, 18750)
  records, problems = read_all(w.getvalue())
  assert problems == []
  assert records == [(begin + i, r) for i, r in enumerate(expected_steps)]


def test_transposed_chunk_wrong_counts_are_errors(steps_bytes):
  data = steps_bytes[104:718]
  for num_records, size in ((49, 18750), (51, 18750), (50, 18749), (50, 18751), (0, 0)):
    with pytest.raises(transpose.TransposeError):
      transpose.decode_transposed(data, num_records, size)


@pytest.mark.parametrize('seed', range(4))
def test_transposed_decoder_fuzz_uncompressed(steps_bytes, seed):
  # Without compression nothing but the decoder's own checks stands between
  # damaged bytes and the output: it must fail cleanly (or decode), never crash or hang.
  data = bytearray(repack_transposed(steps_bytes[104:718], 'none'))
  rng = random.Random(seed)
  for _ in range(150):
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 4)):
      damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    if rng.random() < 0.2:
      damaged = damaged[: rng.randrange(len(damaged))]
    try:
      records = transpose.decode_transposed(bytes(damaged), 50, 18750)
    except (transpose.TransposeError, compression.CompressionError):
      continue
    assert len(records) == 50 and sum(map(len, records)) == 18750


# --- Truncation and bit flips of the fixture. ---


def test_truncation_at_every_offset(steps_bytes, expected_steps):
  for n in range(len(steps_bytes) + 1):
    records, problems = read_all(steps_bytes[:n])
    got = [r for _, r in records]
    assert got == expected_steps[: len(got)], n
    if len(got) < len(expected_steps) and n not in (0, 64):
      # (0 bytes is an empty file, 64 bytes a file with only its signature: both are
      # valid Riegeli files, so nothing tells them from a truncated one.)
      assert problems and all('offset' in p for p in problems), n


@pytest.mark.parametrize('seed', range(5))
def test_bit_flips_never_give_wrong_records(steps_bytes, expected_steps, seed):
  rng = random.Random(seed)
  for _ in range(60):
    data = bytearray(steps_bytes)
    for _ in range(rng.randint(1, 3)):
      bit = rng.randrange(len(data) * 8)
      data[bit // 8] ^= 1 << (bit % 8)
    try:
      records, problems = read_all(bytes(data))
    except RiegeliError:
      continue  # too damaged to be recognised as Riegeli: a clear error is fine
    for position, record in records:
      assert record == expected_steps[position - 64]
    if len(records) < 50:
      assert problems


def test_bit_flip_anywhere_in_the_chunk_loses_it_and_says_where(steps_bytes):
  for offset in (64, 70, 100, 104, 300, 717):
    data = bytearray(steps_bytes)
    data[offset] ^= 0x10
    records, problems = read_all(bytes(data))
    assert records == []
    assert len(problems) == 1 and 'offset 64' in problems[0] and '<_io.BytesIO' in problems[0]


def test_damaged_signature_is_reported_and_reading_goes_on(steps_bytes, expected_steps):
  data = bytearray(steps_bytes)
  data[3] ^= 0x01
  data[50] ^= 0x80
  records, problems = read_all(bytes(data))
  assert [r for _, r in records] == expected_steps
  assert any('signature' in p for p in problems)


@pytest.mark.parametrize(
  'content',
  [b'not a riegeli file at all, just some text that is long enough to look at' * 2, bytes(100), b'\x00'],
)
def test_not_riegeli_raises_a_clear_error(tmp_path, content):
  path = tmp_path / 'garbage.riegeli'
  path.write_bytes(content)
  with pytest.raises(RiegeliError, match='garbage.riegeli.*not a Riegeli'):
    RecordReader(path)


def test_random_garbage_raises_or_reports(tmp_path):
  rng = random.Random(1)
  for _ in range(20):
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    with pytest.raises(RiegeliError):
      RecordReader(io.BytesIO(data))
    # Garbage after a valid signature: reported, no records, no crash.
    records, problems = read_all(FILE_SIGNATURE + data)
    assert records == [] and problems


def test_empty_file_and_signature_only():
  assert read_all(b'') == ([], [])
  assert read_all(FILE_SIGNATURE) == ([], [])
  records, problems = read_all(FILE_SIGNATURE[:30])
  assert records == [] and 'truncated' in problems[0]


# --- Simple chunks from the test writer: > 64 KiB, block boundaries, every compression. ---


def make_records(seed: int, count: int) -> list[bytes]:
  rng = random.Random(seed)
  return [rng.randbytes(rng.choice((0, 1, 5, 40, 300, 2000))) for _ in range(count)]


@pytest.fixture(scope='module')
def big_chunks() -> list[list[bytes]]:
  # 16 chunks, about 270 KB (4 block boundaries): several chunks straddle block
  # boundaries and one is larger than a block.
  chunks = [make_records(i, 1 + (i * 7) % 40) for i in range(15)]
  chunks.insert(4, [random.Random(99).randbytes(2000) for _ in range(40)])
  return chunks


def expected_positions(chunks, begins):
  return [(b + i, r) for b, records in zip(begins, chunks) for i, r in enumerate(records)]


@pytest.mark.parametrize('kind', rt.COMPRESSIONS)
def test_simple_chunks_every_compression_across_blocks(big_chunks, kind):
  data, begins = rt.write_simple_file(big_chunks, kind)
  if kind == 'none':
    assert len(data) > 3 * BLOCK_SIZE
  records, problems = read_all(data)
  assert problems == []
  assert records == expected_positions(big_chunks, begins)
  r = RecordReader(io.BytesIO(data))
  infos = list(r.chunks())
  assert [c.begin for c in infos] == [0, *begins]
  assert all(c.chunk_type == 'r' for c in infos[1:])
  assert [c.num_records for c in infos[1:]] == [len(c) for c in big_chunks]
  assert infos[-1].end == len(data)
  straddling = [c for c in infos if c.begin // BLOCK_SIZE != (c.end - 1) // BLOCK_SIZE]
  if kind == 'none':
    assert len(straddling) >= 3 and max(c.end - c.begin for c in infos) > BLOCK_SIZE
  # read_at every position, in reverse order (a chunk decode per chunk change).
  for position, record in reversed(records):
    assert r.read_at(position) == record
  assert r.problems == []


def test_chunk_header_cut_by_block_header_and_chunk_at_block_boundary():
  w = rt.Writer()
  # Fill up to 20 bytes before the first block boundary, so that the next chunk
  # header is interrupted by the block header; then end a chunk exactly at a boundary.
  w.add_padding_chunk(BLOCK_SIZE - 20 - 64 - 40)
  assert len(w.buf) == BLOCK_SIZE - 20
  a = w.add_simple_chunk([b'first', b'second'])
  # A record size that makes the next chunk end exactly at the second block boundary.
  need = next(
    n
    for n in range(2 * BLOCK_SIZE - len(w.buf) - 100, 2 * BLOCK_SIZE - len(w.buf))
    if _chunk_end(len(w.buf), len(rt.simple_chunk_data([b'x' * n])), 1) == 2 * BLOCK_SIZE
  )
  b = w.add_simple_chunk([b'x' * need])
  assert len(w.buf) == 2 * BLOCK_SIZE
  c = w.add_simple_chunk([b'at a block boundary'])
  assert c == 2 * BLOCK_SIZE
  records, problems = read_all(w.getvalue())
  assert problems == []
  assert records == [(a, b'first'), (a + 1, b'second'), (b, b'x' * need), (c, b'at a block boundary')]
  r = RecordReader(io.BytesIO(w.getvalue()))
  assert r.read_at(c) == b'at a block boundary' and r.read_at(a + 1) == b'second'


def test_padding_for_many_small_records():
  w = rt.Writer()
  a = w.add_simple_chunk([b''] * 1000)
  b = w.add_simple_chunk([b'after'])
  assert b - a >= 1000  # the chunk spans at least one byte per record
  records, problems = read_all(w.getvalue())
  assert problems == [] and len(records) == 1001
  r = RecordReader(io.BytesIO(w.getvalue()))
  assert r.read_at(a + 999) == b'' and r.read_at(b) == b'after'


def test_metadata_padding_and_unknown_chunks():
  w = rt.Writer()
  w.add_chunk(b'm', b'\x00whatever', 0, 12)
  w.add_padding_chunk(100)
  w.add_chunk(b'?', b'future', 0, 0)  # unknown type without records: ignored, as Riegeli does
  a = w.add_simple_chunk([b'kept'])
  u = w.add_chunk(b'?', b'future', 3, 9)  # unknown type with records: reported
  b = w.add_simple_chunk([b'also kept'])
  records, problems = read_all(w.getvalue())
  assert records == [(a, b'kept'), (b, b'also kept')]
  assert len(problems) == 1 and f'offset {u}' in problems[0] and '3 records lost' in problems[0]


# --- Damage in a > 64 KiB file: recovery of later chunks. ---


@pytest.fixture(scope='module')
def big_file(big_chunks):
  data, begins = rt.write_simple_file(big_chunks, 'none')
  return data, begins, expected_positions(big_chunks, begins)


def test_damaged_block_header_inside_a_chunk_is_ignored(big_file):
  data, _, expected = big_file
  damaged = bytearray(data)
  damaged[BLOCK_SIZE + 10] ^= 0x04  # previous_chunk of the second block header
  records, problems = read_all(bytes(damaged))
  assert records == expected
  assert len(problems) == 1 and f'offset {BLOCK_SIZE}: block header hash mismatch' in problems[0]


def test_damaged_chunk_header_recovers_through_the_next_block_header(big_file):
  data, begins, expected = big_file
  # The first chunk wholly inside block 1 after the chunk crossing its start.
  victim = next(b for b in begins if b > BLOCK_SIZE + 24)
  damaged = bytearray(data)
  damaged[victim + 20] ^= 0x01
  records, problems = read_all(bytes(damaged))
  next_block = (victim // BLOCK_SIZE + 1) * BLOCK_SIZE
  # Lost: the chunks from the victim to the one crossing the next block boundary.
  assert records == [(p, r) for p, r in expected if p < victim or p >= next_block]
  assert any(f'offset {victim}: chunk header hash mismatch; skipped to offset' in p for p in problems)
  # Later positions are still readable one by one (the damage is found and skipped).
  r = RecordReader(io.BytesIO(bytes(damaged)))
  p, rec = expected[-1]
  assert r.read_at(p) == rec
  with pytest.raises(RiegeliError, match=f'position {victim}'):
    r.read_at(victim)
  assert r.problems


def test_damaged_chunk_data_loses_only_that_chunk(big_file):
  data, begins, expected = big_file
  victim, end = begins[5], begins[6]
  damaged = bytearray(data)
  info = next(c for c in RecordReader(io.BytesIO(data)).chunks() if c.begin == victim)
  last_data_byte = _add_with_overhead(victim, 40 + info.data_size) - 1
  damaged[last_data_byte] ^= 0x80  # in the last record's value
  records, problems = read_all(bytes(damaged))
  assert records == [(p, r) for p, r in expected if not victim <= p < end]
  assert len(problems) == 1
  assert problems[0].endswith(
    f': offset {victim}: chunk data hash mismatch (chunk of {end - victim} bytes); skipped to offset {end}'
  )
  # Without data hashes, such damage goes unseen (no compression here to trip
  # on it): one wrong record. This is why data hashes are checked by default.
  records, problems = read_all(bytes(damaged), verify_data_hashes=False)
  assert problems == []
  assert sum(a != b for a, b in zip(records, expected)) == 1


def test_block_header_disagreeing_with_the_chunk(big_file):
  data, begins, expected = big_file
  # Replace the third block header by a valid one with a wrong previous_chunk.
  at = 2 * BLOCK_SIZE
  damaged = bytearray(data)
  _, _, next_chunk = struct.unpack('<3Q', data[at : at + 24])
  damaged[at : at + 24] = rt.block_header(5, next_chunk)
  records, problems = read_all(bytes(damaged))
  crossing = max(b for b in begins if b < at)
  assert records == [(p, r) for p, r in expected if not crossing <= p < at + next_chunk]
  assert any('implies a chunk boundary' in p for p in problems)


def test_truncation_of_big_file(big_file):
  data, _, expected = big_file
  rng = random.Random(0)
  for n in [rng.randrange(len(data)) for _ in range(12)] + [BLOCK_SIZE, BLOCK_SIZE + 10, len(data) - 1]:
    records, problems = read_all(data[:n])
    assert records == expected[: len(records)]
    if len(records) < len(expected):
      assert problems and 'truncated' in problems[-1]


@pytest.mark.parametrize('seed', range(2))
def test_bit_flips_in_big_file(big_file, seed):
  data, _, expected = big_file
  rng = random.Random(seed)
  expected_map = dict(expected)
  for _ in range(8):
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 4)):
      bit = rng.randrange(len(damaged) * 8)
      damaged[bit // 8] ^= 1 << (bit % 8)
    try:
      records, problems = read_all(bytes(damaged))
    except RiegeliError:
      continue
    for p, r in records:
      assert expected_map[p] == r
    if len(records) < len(expected):
      assert problems


def test_snappy_falls_back_to_cramjam(monkeypatch):
  pytest.importorskip('cramjam')
  raw = b'snappy block ' * 300
  block = rt.compress_block('snappy', raw)
  monkeypatch.setitem(sys.modules, 'snappy', None)
  monkeypatch.setattr(compression, '_codecs', {})
  assert compression.decompress(compression.SNAPPY, block) == raw
  with pytest.raises(compression.CompressionError):
    compression.decompress(compression.SNAPPY, block[:-5])


def test_chunks_lists_intact_chunks_of_a_damaged_file(big_file):
  data, begins, _ = big_file
  damaged = bytearray(data)
  damaged[begins[2] + 9] ^= 0x01  # chunk header of the third simple chunk
  r = RecordReader(io.BytesIO(bytes(damaged)))
  listed = [c.begin for c in r.chunks()]
  assert listed[0] == 0 and begins[2] not in listed and begins[-1] in listed
  assert r.problems and f'offset {begins[2]}' in r.problems[0]


# --- Hand-built transposed chunks: state kinds the fixture does not use. ---


def transposed_chunk(buffers, tags, nexts, subtypes, buffer_indices, first, transitions, kind='none'):
  """Transposed chunk data (one bucket) from its parts, as the format describes them."""
  bucket = rt.compress_block(kind, b''.join(buffers))
  header = rt.varint(1) + rt.varint(len(buffers)) + rt.varint(len(bucket))
  header += b''.join(rt.varint(len(b)) for b in buffers)
  header += rt.varint(len(tags)) + b''.join(map(rt.varint, tags)) + b''.join(map(rt.varint, nexts))
  header += bytes(subtypes) + b''.join(map(rt.varint, buffer_indices)) + rt.varint(first)
  header = rt.compress_block(kind, header)
  return (
    bytes((rt.compression_byte(kind),))
    + rt.varint(len(header))
    + header
    + bucket
    + rt.compress_block(kind, transitions)
  )


@pytest.mark.parametrize('kind', ['none', 'zstd'])
def test_transposed_fixed_inline_and_buffered_varints(kind):
  # Records {1: 5 (inline varint), 2: fixed64, 3: fixed32, 4: string, 5: varint of 2 bytes}.
  def record(i):
    return (
      b'\x08\x05'
      + b'\x11'
      + struct.pack('<q', -i)
      + b'\x1d'
      + struct.pack('<f', i / 2)
      + b'\x22'
      + rt.varint(2 * i)
      + b'ab' * i
      + b'\x28'
      + rt.varint(200 + i)
    )

  count = 6
  backwards = list(reversed(range(count)))  # the decoder reads values from the last record on
  a = b''.join(bytes((rt.varint(200 + i)[0] & 0x7F, rt.varint(200 + i)[1])) for i in backwards)
  b = b''.join(rt.varint(2 * i) + b'ab' * i for i in backwards)
  c = b''.join(struct.pack('<f', i / 2) for i in backwards)
  d = b''.join(struct.pack('<q', -i) for i in backwards)
  # States, visited backwards through a record: field 5 .. field 1, then start of message;
  # each moves implicitly (next + num_states) to the next one, the last back to 0 via a byte.
  n = 6
  data = transposed_chunk(
    [a, b, c, d],
    tags=[0x28, 0x22, 0x1D, 0x11, 0x08, 3],
    nexts=[1 + n, 2 + n, 3 + n, 4 + n, 5 + n, 0],
    subtypes=[1, 10 + 5],  # field 5: a 2-byte varint in its buffer; field 1: inline value 5
    buffer_indices=[0, 1, 2, 3],
    first=0,
    transitions=b'\x00' * (count - 1),
    kind=kind,
  )
  expected = [record(i) for i in range(count)]
  assert transpose.decode_transposed(data, count, sum(map(len, expected))) == expected


def test_transposed_non_proto_records():
  records = [b'hello', b'', b'not a proto \xff\xff', b'xyz!']
  backwards = records[::-1]
  data = transposed_chunk(
    [b''.join(backwards), b''.join(rt.varint(len(r)) for r in backwards)],  # values, then lengths last
    tags=[1],
    nexts=[0],
    subtypes=[],
    buffer_indices=[0],
    first=0,
    transitions=b'\x00' * (len(records) - 1),
  )
  assert transpose.decode_transposed(data, 4, sum(map(len, records))) == records


def test_transposed_structural_errors():
  ok = dict(tags=[1], nexts=[0], subtypes=[], buffer_indices=[0], first=0, transitions=b'\x00')
  buffers = [b'ab', b'\x01\x01']
  # (values are read from the last record on)
  assert transpose.decode_transposed(transposed_chunk(buffers, **ok), 2, 2) == [b'b', b'a']
  bad = [
    dict(ok, nexts=[1]),  # next node out of range
    dict(ok, first=1),  # first node out of range
    dict(ok, buffer_indices=[2]),  # buffer out of range
    dict(ok, tags=[7], buffer_indices=[]),  # invalid tag
    dict(ok, transitions=b'\x04'),  # transition to node 1 of 1
    dict(ok, tags=[2], buffer_indices=[]),  # start of submessage with none open
    dict(ok, tags=[0x0E], buffer_indices=[]),  # end of submessage never closed
  ]
  for parts in bad:
    with pytest.raises(transpose.TransposeError):
      transpose.decode_transposed(transposed_chunk(buffers, **parts), 2, 2)
  # Implicit loop: two states moving implicitly to each other.
  loop = dict(ok, tags=[0, 0], nexts=[1 + 2, 0 + 2], buffer_indices=[])
  with pytest.raises(transpose.TransposeError, match='implicit loop'):
    transpose.decode_transposed(transposed_chunk(buffers, **loop), 2, 2)


@pytest.mark.parametrize('setting', [('_COMPILE_AFTER', 10**9), ('_MAX_DEPTH', 2), ('_MAX_PATH', 10)])
def test_transposed_interpreter_alone_gives_the_same_records(
  steps_bytes, expected_steps, monkeypatch, setting
):
  monkeypatch.setattr(transpose, setting[0], setting[1])
  monkeypatch.setattr(transpose, '_PROGRAMS', {})
  assert transpose.decode_transposed(steps_bytes[104:718], 50, 18750) == expected_steps
  assert transpose._PROGRAMS == {}

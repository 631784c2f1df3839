"""Reading the Riegeli logs of DeepMind's EnvLogger 1.3 in pure Python.

Riegeli/records files (google/riegeli): `records` (file layout, chunks,
record positions, damage; `RecordReader`), `transpose` (the transposed chunk
decoder), `compression` (brotli/zstd/snappy blocks) and `highwayhash`
(Riegeli's header and data hashes). `storage` decodes the records themselves
(EnvLogger's `Data`/`Datum` protos). Nothing here is imported by
`import envlogger`; the codecs are imported on first use.
"""

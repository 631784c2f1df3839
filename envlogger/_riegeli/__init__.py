"""A pure-Python reader of Riegeli/records files (google/riegeli), as written by DeepMind's envlogger.

Modules: `records` (file layout, chunks, `RecordReader`), `transpose` (the
transposed chunk decoder), `compression` (brotli/zstd/snappy blocks) and
`highwayhash` (Riegeli's header and data hashes). Nothing here is imported by
`import envlogger`; the codecs are imported on first use.
"""

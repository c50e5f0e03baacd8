"""The Parquet store: table schemas (schema), atomic writes and reads (store), which files a
reader sees (listing), the driver's background writer (writer), compaction (compact), the
store doctor (doctor) and the DuckDB views over it (query)."""

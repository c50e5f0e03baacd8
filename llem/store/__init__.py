"""The Parquet store: every column declared once (column, columns; the runs row is the RunRow
record of run_fields and run_row), table schemas made from them (schema), atomic writes and
reads (store), which files a reader sees (listing), the driver's background writer (writer),
compaction (compact), the store doctor (doctor) and the DuckDB views over it (query)."""

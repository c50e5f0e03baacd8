"""Reading a finished campaign: compare configurations, export rows, an HTML report with plots.

Everything here reads the store through DuckDB (llem.store.query) and never imports Ray.
"""

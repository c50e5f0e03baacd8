"""Reading a finished campaign: compare configurations, export rows, an HTML report with plots.

Everything here reads the store through DuckDB (llem.query) and never imports Ray.
"""

"""palliasim.experiments.inputs: reading and validating users' files before any compute.

``tables.read_table`` reads a CSV or Parquet file (UTF-8 with or without BOM; other encodings,
other separators, empty and header-only files refused with the reason); ``schema`` declares
column rules and reports every violation at once; ``cohort_schema`` is the schema of
``task=analyse``'s ``patients`` / ``visits`` files (conf/DATA.md).
"""

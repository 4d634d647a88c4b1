"""The order journal: a durable, sequence-numbered record of every intent, write, venue answer,
risk-state change and kill (`vajra.journal.journal`), restart reconciliation
(`vajra.journal.recover`, sans-I/O), and CSV/Parquet export (`vajra.journal.export`)."""

"""The SQL store: models, engine setup per dialect, and migrations."""

"""Readers of other tools' monitoring configuration, turned into alerts documents."""

"""datamantri-alerts: a command-line alert manager for data platforms."""

__version__ = "0.1.0"

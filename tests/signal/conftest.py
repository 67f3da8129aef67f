"""The evaluator's fixtures (flag alert type, webhook sink, stores) and the channels' stand-ins
(SMTP relay, Adaptive Card validator) for the no-spam scenarios."""

from tests.channels.conftest import card_validator, smtp_plain
from tests.evaluator.conftest import flag_type, flags, plugin_dir, sink
from tests.evaluator.stores import any_store

__all__ = [
    "any_store",
    "card_validator",
    "flag_type",
    "flags",
    "plugin_dir",
    "sink",
    "smtp_plain",
]

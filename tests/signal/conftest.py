"""The evaluator's fixtures (flag alert type, webhook sink, stores) for the no-spam scenarios."""

from tests.evaluator.conftest import flag_type, flags, plugin_dir, sink  # noqa: F401
from tests.evaluator.stores import any_store  # noqa: F401

"""A command's start-up runs without the cyclic garbage collector.

Start-up imports typer, SQLAlchemy and the store's models (and for `evaluate` pydantic, psycopg
and the services): hundreds of thousands of objects that live until the process exits. CPython's
collector traverses the survivors again and again while they accumulate (its oldest generation
whenever they have grown by a quarter), which reclaims next to nothing and cost ≈ 10-15 % of
`alerts list`'s CPU, plus one more pass over everything when the interpreter exits.

`main` pauses the collector (`pause_gc`). When the command opens the store, its imports are done:
`resume_gc` moves every object alive then to the permanent generation (`gc.freeze`), which later
collections skip, and turns collection back on for the work that follows (an evaluator run, a
delivery). A command that never opens the store is short; `main` resumes on the way out.
Only a pause made here is resumed here, so a caller that runs the CLI in-process with the
collector in its own hands (the tests, through `app`) is left alone.
"""

from __future__ import annotations

import gc

_paused = False


def pause_gc() -> None:
    """Turn the collector off for start-up (when it is on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """Start-up is over: what is alive now is kept out of later collections (`gc.freeze`) and
    collection is turned back on. Nothing happens unless `pause_gc` turned it off."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()

"""Decisions that keep notifications from becoming spam, one module each.

Each is a small function of the alert, the time and what the store holds, called from the
evaluator's outbox decision point (`services.results.apply_results`): flapping detection
(`flapping`), maintenance windows (`windows`), silences by label matcher (`silences`), and the
one place that combines them with the mute into a suppression reason (`hold`); and, at
delivery, digests (`digest`) and acknowledgement of an episode (`ack`, read by `states`).
"""

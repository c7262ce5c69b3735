"""The sync engine: read both sides, plan, apply, report; state store, worker, command line."""

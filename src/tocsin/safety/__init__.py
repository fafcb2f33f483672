"""Field safety: persons, risk flags, field operations, briefings (issue 6)."""

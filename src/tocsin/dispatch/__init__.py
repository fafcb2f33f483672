"""Emergency calls on a map: calls, incidents, units, recommendation, dispatch."""

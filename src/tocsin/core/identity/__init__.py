"""Identity: the force as a tree of units, users, roles, device sessions."""

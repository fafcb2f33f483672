"""What every Tocsin module stands on: configuration, storage, identity,
access policy, the event bus and errors."""

"""Major operations: command structure, situation map, journal, orders, live positions,
Cursor-on-Target for TAK clients, CAP alerts and after-action reports."""

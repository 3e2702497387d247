"""Pure v1 specifications: names, ids, defaults and validation messages (no I/O, no clock)."""

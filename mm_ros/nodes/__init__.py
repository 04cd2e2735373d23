"""Thin node shells: read config, wire the bus to the logic, convert messages. No numerics."""

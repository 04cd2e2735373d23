"""Adapter and tiny-model training (the AnyMAL recipe): synthetic or recorded data, two stages.

Imports core, adapters, llm and torch; never a bus (DESIGN.md section 3).
"""

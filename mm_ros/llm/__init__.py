"""The token-space model service: prompt assembly, generation, KV-prefix cache, model backends.

Imports core, adapters, engines, torch and transformers (DESIGN.md section 3); never a bus.
Submodules import torch; this package's own import stays light.
"""

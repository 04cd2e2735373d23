"""Sensor capture at the edge of the system: audio from a sound card (sounddevice) or a WAV file.

Sources produce core values (`AudioChunk` with capture stamps) and know nothing about buses;
the ``microphone`` node wires a source to a publisher. Optional libraries are imported lazily.
"""

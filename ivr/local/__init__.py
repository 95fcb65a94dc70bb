"""Hear it yourself: ``ivr say`` (prompt preview) and ``ivr phone`` (terminal softphone)
on the local sound device through sounddevice/PortAudio."""

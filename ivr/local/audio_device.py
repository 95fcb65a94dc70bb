"""The local sound device through sounddevice (PortAudio): listing, selection, clear errors.

PortAudio reads the device list once, when sounddevice is first imported, so this module
imports it lazily (``ivr --help`` and the server never touch the sound system).

Everything here works at the telephone rate: callers hand 8 kHz int16 in and get 8 kHz
int16 out. When the device cannot run at 8 kHz, it is opened at its own default rate and
the audio is resampled with soxr on the way (PipeWire and most ALSA ``default`` devices
accept 8 kHz and resample themselves).
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..media.audio import RATE, resample

__all__ = ["AudioDeviceError", "NoAudioDevice", "DeviceInfo", "list_devices", "format_devices",
           "pick_device", "play", "PhoneAudio", "MicSource"]

FRAME = 160  # 20 ms at 8 kHz, one RTP packet


class AudioDeviceError(Exception):
    """The sound device failed (cannot open, unsupported settings, PortAudio error)."""


class NoAudioDevice(AudioDeviceError):
    """There is no usable device of the kind asked for (or no PortAudio at all)."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    inputs: int
    outputs: int
    default_rate: float
    default_input: bool
    default_output: bool


def _sd():
    try:
        import sounddevice
    except OSError as e:  # libportaudio2 missing
        raise NoAudioDevice(f"PortAudio is not available ({e})") from None
    except ImportError as e:
        raise NoAudioDevice(f"the sounddevice package is not installed ({e})") from None
    return sounddevice


def list_devices() -> list[DeviceInfo]:
    sd = _sd()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as e:
        raise AudioDeviceError(f"cannot list sound devices: {e}") from None
    return [DeviceInfo(i, d["name"], apis[d["hostapi"]]["name"], d["max_input_channels"],
                       d["max_output_channels"], float(d["default_samplerate"]),
                       i == default_in, i == default_out)
            for i, d in enumerate(devices)]


def format_devices(devices: list[DeviceInfo]) -> str:
    if not devices:
        return "no sound devices found"
    lines = []
    for d in devices:
        mark = ("<" if d.default_input else " ") + (">" if d.default_output else " ")
        lines.append(f"{mark} {d.index:3d}  {d.name} ({d.hostapi}; {d.inputs} in, {d.outputs} out, "
                     f"{d.default_rate:g} Hz)")
    lines.append("(< default input, > default output)")
    return "\n".join(lines)


def pick_device(spec: str | None, kind: str, hint: str = "") -> int:
    """The device index for ``spec`` (None: the default; a number; or part of a name).

    ``kind`` is "input" or "output". Raises NoAudioDevice naming ``hint`` (the option that
    avoids the device) when nothing fits.
    """
    channels = "inputs" if kind == "input" else "outputs"
    devices = [d for d in list_devices() if getattr(d, channels) > 0]
    suffix = f"; {hint}" if hint else ""
    if not devices:
        raise NoAudioDevice(f"no audio {kind} device found (PortAudio sees none){suffix}")
    if spec is None or spec == "":
        default = [d for d in devices if getattr(d, "default_" + kind)]
        return (default or devices)[0].index
    if spec.isdigit():
        found = [d for d in devices if d.index == int(spec)]
    else:
        found = [d for d in devices if spec.lower() in d.name.lower()]
    if not found:
        names = ", ".join(f"{d.index}: {d.name}" for d in devices)
        raise NoAudioDevice(f"no audio {kind} device matches {spec!r} (have {names}){suffix}")
    return found[0].index


def _device_rate(sd, device: int, kind: str) -> int:
    """8000 when the device takes it, else its default rate."""
    check = sd.check_output_settings if kind == "output" else sd.check_input_settings
    try:
        check(device=device, channels=1, dtype="int16", samplerate=RATE)
        return RATE
    except Exception:
        return int(sd.query_devices(device)["default_samplerate"])


def play(samples: np.ndarray, device: int | None = None) -> float:
    """Play 8 kHz int16 samples on ``device`` and block until done; returns the seconds played."""
    sd = _sd()
    if device is None:
        device = pick_device(None, "output")
    rate = _device_rate(sd, device, "output")
    data = samples if rate == RATE else resample(samples, RATE, rate)
    try:
        sd.play(np.asarray(data, dtype=np.int16), rate, device=device, blocking=True)
    except sd.PortAudioError as e:
        raise AudioDeviceError(f"cannot play on device {device}: {e}") from None
    return len(samples) / RATE


class MicSource:
    """A player source (``read_frame``) of microphone frames; silence when none are waiting.

    Holds at most ``max_frames`` (the oldest are dropped) so the sound card running faster
    than the media clock can never build up delay.
    """

    def __init__(self, max_frames: int = 8) -> None:
        self._frames: deque = deque(maxlen=max_frames)

    def push(self, frame: np.ndarray) -> None:
        self._frames.append(frame)

    def read_frame(self) -> np.ndarray:
        try:
            return self._frames.popleft()
        except IndexError:
            return np.zeros(FRAME, dtype=np.int16)


class _Rechunk:
    """Resample a stream chunk by chunk (soxr streaming) and cut it into fixed frames."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None
        if in_rate != out_rate:
            import soxr
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        self._pending = np.zeros(0, dtype=np.int16)

    def feed(self, samples: np.ndarray) -> None:
        if self._stream is not None:
            y = self._stream.resample_chunk(np.asarray(samples, dtype=np.float32))
            samples = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
        self._pending = np.concatenate([self._pending, samples])

    def take(self, n: int) -> np.ndarray | None:
        if len(self._pending) < n:
            return None
        out, self._pending = self._pending[:n], self._pending[n:]
        return out


class PhoneAudio:
    """Microphone -> ``on_mic_frame(160 samples)``; ``pull(n) -> 8 kHz samples`` -> speaker.

    Either side may be left out (``input_device``/``output_device`` None with the flag off).
    Callbacks run on PortAudio's thread: ``on_mic_frame`` and ``pull`` must be thread-safe.
    """

    def __init__(self, *, on_mic_frame: Callable[[np.ndarray], None] | None,
                 pull: Callable[[int], np.ndarray] | None,
                 input_device: int | None = None, output_device: int | None = None) -> None:
        self._sd = _sd()
        self.on_mic_frame = on_mic_frame
        self.pull = pull
        self.input_device = input_device
        self.output_device = output_device
        self._streams: list = []
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def start(self) -> None:
        sd = self._sd
        try:
            if self.on_mic_frame is not None:
                self._streams.append(self._open_input(sd))
            if self.pull is not None:
                self._streams.append(self._open_output(sd))
            for s in self._streams:
                s.start()
        except sd.PortAudioError as e:
            self.stop()
            raise AudioDeviceError(f"cannot open the sound device: {e}") from None

    def _open_input(self, sd):
        rate = _device_rate(sd, self.input_device, "input")
        chunker = _Rechunk(rate, RATE)

        def callback(indata, frames, time_info, status):
            if status:
                self.errors.append(str(status))
            chunker.feed(indata[:, 0].copy())
            while (frame := chunker.take(FRAME)) is not None:
                self.on_mic_frame(frame)
        return sd.InputStream(samplerate=rate, channels=1, dtype="int16", device=self.input_device,
                              blocksize=rate // 50, latency="low", callback=callback)

    def _open_output(self, sd):
        rate = _device_rate(sd, self.output_device, "output")
        chunker = _Rechunk(RATE, rate)

        def callback(outdata, frames, time_info, status):
            if status:
                self.errors.append(str(status))
            while (block := chunker.take(frames)) is None:
                chunker.feed(self.pull(FRAME))
            outdata[:, 0] = block
        return sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.output_device,
                               blocksize=rate // 50, latency="low", callback=callback)

    def stop(self) -> None:
        streams, self._streams = self._streams, []
        for s in streams:
            try:
                s.stop()
                s.close()
            except Exception:  # already broken: nothing more to release
                pass

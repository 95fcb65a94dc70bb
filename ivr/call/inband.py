"""Runs the in-band DTMF detector for every call in one vectorised pass per media tick.

Calls without RFC 4733 queue their received audio frames here; on each media-clock tick
the service stacks the pending frames of all channels into one matrix and hands it to
:class:`ivr.media.inband_dtmf.InbandDtmfBank`.  Frames arriving between ticks queue up
(at most a few per channel) so no audio is skipped.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np
from twisted.logger import Logger

from ..media.inband_dtmf import InbandDtmfBank

log = Logger(namespace="ivr.call.inband")


class InbandDtmfService:
    def __init__(self, media_clock, max_channels: int = 4096) -> None:
        self.clock = media_clock
        self.bank = InbandDtmfBank(max_channels)
        self._channels: dict[int, tuple[deque, Callable[[str], None]]] = {}
        self.frames_processed = 0

    def open(self, on_digit: Callable[[str], None]) -> "InbandChannel":
        slot = self.bank.open()
        queue: deque = deque(maxlen=16)
        self._channels[slot] = (queue, on_digit)
        if len(self._channels) == 1:
            # every firing: each consumes the frames received since the previous one, so
            # the detector's work is spread over the phases instead of landing on one
            self.clock.register(self, every_firing=True)
        return InbandChannel(self, slot, queue)

    def close(self, slot: int) -> None:
        if self._channels.pop(slot, None) is not None:
            self.bank.close(slot)
            if not self._channels:
                self.clock.unregister(self)

    def tick(self, count: int) -> None:
        while True:
            slots, frames = [], []
            for slot, (queue, _) in self._channels.items():
                if queue:
                    slots.append(slot)
                    frames.append(queue.popleft())
            if not slots:
                return
            self.frames_processed += len(slots)
            for slot, digit in self.bank.process(np.stack(frames), slots):
                channel = self._channels.get(slot)
                if channel is not None:
                    try:
                        channel[1](digit)
                    except Exception:
                        log.failure("in-band digit callback failed")


class InbandChannel:
    def __init__(self, service: InbandDtmfService, slot: int, queue: deque) -> None:
        self.service, self.slot, self.queue = service, slot, queue

    def __call__(self, frame: np.ndarray) -> None:
        if len(frame) == 160:
            self.queue.append(frame)

    def close(self) -> None:
        self.service.close(self.slot)

"""``ivr say TEXT``: hear a prompt on the local speaker exactly as a caller will."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "say", help="play a TTS prompt on the local speaker as a caller hears it",
        description="Render TEXT with the server's TTS (same cache), pass it through G.711 as a "
                    "call does, and play it on the local sound device (or write it to a WAV).")
    p.add_argument("text", nargs="?", help="what to say")
    p.add_argument("--voice", default=None, help="voice id, name or language (see --list-voices)")
    p.add_argument("--language", default=None, help="language tag, e.g. en-gb")
    p.add_argument("--rate", type=int, default=None, help="speaking rate, words per minute (80-450)")
    p.add_argument("--codec", default="PCMU", choices=["PCMU", "PCMA"],
                   help="G.711 law the caller's call uses (default PCMU)")
    p.add_argument("--output", "-o", default=None, metavar="FILE.wav",
                   help="write the 8 kHz prompt to this WAV instead of playing it")
    p.add_argument("--device", default=None, metavar="N|NAME",
                   help="output device number or part of its name (see --list-devices)")
    p.add_argument("--list-voices", action="store_true", help="list the TTS voices and exit")
    p.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")
    p.add_argument("--data", default="data", metavar="DIR",
                   help="the server's data directory; the TTS cache is DIR/cache/tts (default ./data)")
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"ivr say: {message}", file=sys.stderr)
    return code


def run(args) -> int:
    from . import audio_device
    if args.list_devices:
        try:
            print(audio_device.format_devices(audio_device.list_devices()))
        except audio_device.AudioDeviceError as e:
            return _fail(str(e))
        return 0
    if not args.list_voices and not (args.text and args.text.strip()):
        return _fail("nothing to say: give TEXT (or --list-voices)")
    device = None
    if not args.list_voices and not args.output:
        try:  # find out before rendering: a missing device is the likeliest failure
            device = audio_device.pick_device(args.device, "output",
                                              hint="use --output FILE.wav to write the prompt instead")
        except audio_device.AudioDeviceError as e:
            return _fail(str(e))
    return _run_reactor(args, device)


def _run_reactor(args, device) -> int:
    from twisted.internet import defer, task

    from ..media.tts import TtsEngine, TtsError
    from . import audio_device
    from .say import say, voices_text
    result = {"code": 1}

    @defer.inlineCallbacks
    def main(reactor):
        engine = TtsEngine(Path(args.data) / "cache" / "tts", reactor=reactor)
        try:
            if args.list_voices:
                print(voices_text((yield engine.list_voices())))
            else:
                samples, where = yield say(reactor, engine, args.text, voice=args.voice,
                                           language=args.language, rate=args.rate, codec=args.codec,
                                           output=args.output, device=device)
                verb = "wrote" if args.output else "played"
                print(f"{verb} {len(samples) / 8000:.2f} s of {args.codec} audio"
                      f"{' to ' + args.output if args.output else ''}", file=sys.stderr)
            result["code"] = 0
        except TtsError as e:
            result["code"] = _fail(f"cannot render: {e}", 1)
        except audio_device.AudioDeviceError as e:
            result["code"] = _fail(str(e), 2)
        except OSError as e:
            result["code"] = _fail(str(e), 1)
        finally:
            yield engine.close()

    try:
        task.react(lambda reactor: main(reactor), [])
    except SystemExit:
        pass
    return result["code"]

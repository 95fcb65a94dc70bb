"""``ivr say TEXT``: hear a prompt on the local speaker exactly as a caller will."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

DEFAULT_DIALPLANS = "dialplans"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "say", help="play a TTS prompt on the local speaker as a caller hears it",
        description="Render TEXT with the server's TTS (same cache) and the voice settings of the "
                    "dialplan, pass it through G.711 as a call does, and play it on the local sound "
                    "device (or write it to a WAV): the samples a caller receives for a `say`.")
    p.add_argument("text", nargs="?", help="what to say")
    p.add_argument("--voice", default=None,
                   help="voice id, name or language (see --list-voices); default: the plan's voice")
    p.add_argument("--language", default=None, help="language tag, e.g. en-gb; default: the plan's language")
    p.add_argument("--rate", type=int, default=None,
                   help="speaking rate, words per minute (80-450); default: the plan's rate")
    p.add_argument("--dialplans", default=None, metavar="DIR",
                   help="the server's dialplans, whose settings give the default voice, language and "
                        f"rate (default ./{DEFAULT_DIALPLANS}, skipped if absent)")
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
    settings = None
    if not args.list_voices:
        from .say import PlanInvalid
        try:
            settings = _settings(args.dialplans)
        except OSError as e:
            return _fail(str(e))
        except PlanInvalid as e:  # the server would refuse this plan too
            for error in e.errors:
                print(error, file=sys.stderr)
            return _fail(f"{args.dialplans or DEFAULT_DIALPLANS}: {e}; a call would not run this plan")
    device = None
    if not args.list_voices and not args.output:
        try:  # find out before rendering: a missing device is the likeliest failure
            device = audio_device.pick_device(args.device, "output",
                                              hint="use --output FILE.wav to write the prompt instead")
        except audio_device.AudioDeviceError as e:
            return _fail(str(e))
    return _run_reactor(args, device, settings)


def _settings(dialplans):
    """The plan's settings (as a call uses them); the defaults when ./dialplans is absent."""
    from ..dialplan.model import Settings
    from .say import plan_settings
    if dialplans is None:
        if not Path(DEFAULT_DIALPLANS).exists():
            print(f"ivr say: no ./{DEFAULT_DIALPLANS}: using the TTS defaults "
                  "(give --dialplans DIR to speak with a plan's voice settings)", file=sys.stderr)
            return Settings()
        dialplans = DEFAULT_DIALPLANS
    if not Path(dialplans).exists():
        raise FileNotFoundError(f"no dialplans at {dialplans}")
    return plan_settings(dialplans)


def _run_reactor(args, device, settings) -> int:
    from twisted.internet import defer, task

    from ..media.tts import TtsEngine, TtsError
    from . import audio_device
    from .say import call_voice, say, voices_text
    result = {"code": 1}

    @defer.inlineCallbacks
    def main(reactor):
        engine = TtsEngine(Path(args.data) / "cache" / "tts", reactor=reactor)
        try:
            if args.list_voices:
                print(voices_text((yield engine.list_voices())))
            else:
                voice, language, rate = call_voice(settings, args.voice, args.language, args.rate)
                samples, where = yield say(reactor, engine, args.text, voice=voice,
                                           language=language, rate=rate, codec=args.codec,
                                           output=args.output, device=device)
                verb = "wrote" if args.output else "played"
                print(f"{verb} {len(samples) / 8000:.2f} s of {args.codec} audio"
                      f"{' to ' + args.output if args.output else ''} (voice {voice or 'default'}, "
                      f"language {language or 'default'}, rate {rate or 'default'})", file=sys.stderr)
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

"""``ivr phone [NUMBER]``: a terminal softphone for trying dialplans without a desk phone."""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile

__all__ = ["add_parser", "run", "local_address_for"]

NO_DEVICE_HINT = ("use --input-file WAV instead of the microphone, and --record FILE.wav "
                  "with --no-speaker instead of the speaker")


def _server(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "phone", help="call a number from this terminal (microphone and speaker)",
        description="A terminal softphone: calls NUMBER on a running server (--server) or on an "
                    "in-process server running the local dialplans. Type digits to send them as "
                    "RFC 4733 events; q hangs up.")
    p.add_argument("number", nargs="?", default="echo",
                   help="number or route to call, or a full sip: URI (default: echo)")
    p.add_argument("--server", type=_server, default=None, metavar="HOST:PORT",
                   help="a running ivr server (default: start one in-process on --dialplans)")
    p.add_argument("--input-file", default=None, metavar="WAV",
                   help="send this WAV instead of the microphone (then silence)")
    p.add_argument("--record", default=None, metavar="FILE.wav", help="keep what the call sent us")
    p.add_argument("--no-speaker", action="store_true", help="do not play the call's audio")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="hang up this long after the answer")
    p.add_argument("--answer-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="give up when not answered within this time (default 60)")
    p.add_argument("--digits", default="", metavar="DIGITS",
                   help="send these DTMF digits after the answer (see --digit-delay)")
    p.add_argument("--digit-delay", type=float, default=1.0, metavar="SECONDS",
                   help="wait this long after the answer before sending --digits (default 1)")
    p.add_argument("--device", default=None, metavar="N|NAME",
                   help="sound device for both directions (number or part of the name)")
    p.add_argument("--input-device", default=None, metavar="N|NAME", help="microphone device")
    p.add_argument("--output-device", default=None, metavar="N|NAME", help="speaker device")
    p.add_argument("--list-devices", action="store_true", help="list the sound devices and exit")
    p.add_argument("--jitter-ms", type=int, default=60, help="playout buffer depth (default 60 ms)")
    p.add_argument("--codec", action="append", choices=["PCMU", "PCMA"], default=None,
                   help="offer this codec (repeat for several; default PCMU then PCMA)")
    local = p.add_argument_group("in-process server (without --server)")
    local.add_argument("--dialplans", default="dialplans", metavar="DIR")
    local.add_argument("--prompts", default="prompts", metavar="DIR")
    local.add_argument("--data", default=None, metavar="DIR",
                       help="server data directory (default: a temporary one)")
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"ivr phone: {message}", file=sys.stderr)
    return code


def local_address_for(host: str, port: int) -> str:
    """The local address the OS would use to reach host:port (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((host, port))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def run(args) -> int:
    from . import audio_device
    if args.list_devices:
        try:
            print(audio_device.format_devices(audio_device.list_devices()))
        except audio_device.AudioDeviceError as e:
            return _fail(str(e))
        return 0
    input_audio = None
    if args.input_file:
        from ..media.audio import AudioFormatError, load_wav
        try:
            input_audio = load_wav(args.input_file)
        except (OSError, AudioFormatError) as e:
            return _fail(f"cannot read --input-file {args.input_file}: {e}")
    try:
        in_dev = None if input_audio is not None else audio_device.pick_device(
            args.input_device or args.device, "input", hint=NO_DEVICE_HINT)
        out_dev = None if args.no_speaker else audio_device.pick_device(
            args.output_device or args.device, "output", hint=NO_DEVICE_HINT)
    except audio_device.AudioDeviceError as e:
        return _fail(str(e))
    if args.server is not None:
        try:
            host = socket.gethostbyname(args.server[0])
        except OSError as e:
            return _fail(f"cannot resolve {args.server[0]}: {e}")
        args.server = (host, args.server[1])
    return _run_reactor(args, input_audio, in_dev, out_dev)


def _target(number: str, host: str, port: int) -> str:
    if number.startswith(("sip:", "sips:")):
        return number
    h = f"[{host}]" if ":" in host else host
    return f"sip:{number}@{h}:{port}"


def _start_local_server(reactor, args):
    from ..server import IvrServer
    data = args.data or tempfile.mkdtemp(prefix="ivr-phone-")
    srv = IvrServer(reactor, sip=("127.0.0.1", 0), http=("127.0.0.1", 0), rtp_ports=(40000, 49999),
                    dialplans=args.dialplans, prompts=args.prompts, data=data)
    srv.start()
    return srv, ("127.0.0.1", srv.transport.port)


def _run_reactor(args, input_audio, in_dev, out_dev) -> int:
    from twisted.internet import defer, task

    from ..media.audio import save_wav
    from ..rtp.clock import MediaClock
    from . import audio_device
    from .jitter import JitterBuffer
    from .keyboard import Keyboard
    from .phone import Softphone, print_to
    outcome = {"code": 1}

    @defer.inlineCallbacks
    def main(reactor):
        server = args.server
        if server is None:
            try:
                _srv, server = _start_local_server(reactor, args)
            except Exception as e:  # any failure to start is reported, not a traceback
                outcome["code"] = _fail(f"cannot start the in-process server on {args.dialplans}: "
                                        f"{type(e).__name__}: {e} (or use --server HOST:PORT)", 1)
                return
        local = "127.0.0.1" if server[0].startswith("127.") else local_address_for(*server)
        mic = audio_device.MicSource() if in_dev is not None else None
        jitter = JitterBuffer(target_ms=args.jitter_ms, max_ms=max(200, args.jitter_ms * 3)) \
            if out_dev is not None else None
        phone = Softphone(reactor, MediaClock(reactor), target=_target(args.number, *server),
                          server=server, local_host=local, mic=mic, input_audio=input_audio,
                          jitter=jitter, duration=args.duration, digits=args.digits,
                          digit_delay=args.digit_delay, answer_timeout=args.answer_timeout,
                          codecs=tuple(args.codec or ("PCMU", "PCMA")),
                          show=print_to(sys.stdout))
        sound = None
        if mic is not None or jitter is not None:
            sound = audio_device.PhoneAudio(on_mic_frame=mic.push if mic else None,
                                            pull=jitter.read if jitter else None,
                                            input_device=in_dev, output_device=out_dev)
            try:
                sound.start()
            except audio_device.AudioDeviceError as e:
                outcome["code"] = _fail(f"{e}; {NO_DEVICE_HINT}")
                return
        keyboard = Keyboard(reactor, phone.on_key)
        keyboard.start()
        if keyboard.interactive:
            print("type digits to send them, q to hang up", flush=True)
        try:
            result = yield phone.call()
        except Exception as e:  # cannot bind, bad URI...: a message, never a traceback
            outcome["code"] = _fail(f"{type(e).__name__}: {e}", 1)
            return
        finally:
            keyboard.stop()
            if sound is not None:
                sound.stop()
        if args.record:
            heard = result.heard_audio()
            try:
                save_wav(args.record, heard)
                print(f"recorded {len(heard) / 8000:.2f} s to {args.record}", flush=True)
            except OSError as e:
                outcome["code"] = _fail(f"cannot write --record {args.record}: {e}", 1)
                return
        outcome["code"] = result.exit_code

    try:
        task.react(lambda reactor: main(reactor), [])
    except SystemExit:
        pass
    return outcome["code"]

"""A varied corpus of the server's own TTS speech for in-band DTMF talk-off tests.

Rendered exactly as the server renders prompts (``EspeakRenderer``: espeak-ng through
pyttsx3's binding, resampled to 8 kHz int16), in a child process (espeak-ng may be
initialised only once per process; see ``ivr/media/tts_worker.py``), and cached as one .npy
per corpus version.  ``python -m tests.media.tts_corpus OUT.npy`` renders it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SENTENCES = [
    "Hello, thank you for calling. Please enter your account number followed by the pound key.",
    "Your call is important to us. All of our representatives are busy assisting other customers.",
    "To hear these options again, press nine. For billing questions, press two, or stay on the line.",
    "Welcome to the main menu. For sales, press one. For support, press two. For the operator, press zero.",
    "Sorry, I did not get that. Please try again, or press the star key to return to the previous menu.",
    "Your appointment is confirmed for Tuesday, the twenty third of March, at half past four in the afternoon.",
    "The quick brown fox jumps over the lazy dog while five boxing wizards jump quickly.",
    "Please hold while we transfer your call. This call may be recorded for quality and training purposes.",
    "Goodbye, and have a wonderful day! We look forward to hearing from you again soon.",
    "Is this the right number? Yes! No? Maybe... Well, who knows. Really, truly, absolutely.",
    "Music and singing: la la la, oh oh oh, mmmm, eeeee, a high pitched voice that sings along.",
    "Ahhhhhh. Ooooooh. Eeeeeee. Iiiiiii. Uuuuuuu. Mmmmmmm. Nnnnnnn. Zzzzzzz. Shhhhhh.",
]
NUMBERS = [
    "one two three four five six seven eight nine zero star pound",
    "0123456789 9876543210 5551234 18005550199",
    "Your balance is 1,234.56 dollars. The minimum payment of 35 dollars is due on 12/31/2025.",
    "Your reference number is 7 4 1, 8 5 2, 9 6 3, 0.",
    "Call us back at +1 (415) 555-0142, extension 3307, between 9 and 17 o'clock.",
    "Seventeen, twenty eight, thirty nine, forty, fifty one, sixty two, seventy three, eighty four, ninety five.",
    "It is 3:45 pm. The temperature is minus 7 degrees. Flight BA 2490 departs from gate 14 B.",
    "One hundred thousand, two million, three billion, four point five six, eleven twelfths.",
]
NAMES = [
    "Alice Johnson, Bob Smith, Carlos Hernandez, Dmitri Ivanov, Eleanor Rigby, Fatima al-Sayed.",
    "Giovanni Rossi, Hiroshi Tanaka, Ingrid Bergman, Jean-Pierre Dupont, Kwame Mensah, Laura Palmer.",
    "Mohammed, Nadia, Olusegun, Priya, Quentin, Rosalind, Siobhan, Thibault, Ulrich, Valentina.",
    "Please say the name of the person you are calling: for example, Wolfgang Amadeus Mozart.",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z.",
    "Alpha Bravo Charlie Delta Echo Foxtrot Golf Hotel India Juliett Kilo Lima Mike November.",
]
OTHER_LANGUAGES = [
    ("de", "Guten Tag. Bitte geben Sie Ihre Kundennummer ein: eins, zwei, drei, vier, fünf."),
    ("fr", "Bonjour. Pour le service client, tapez un. Sinon, restez en ligne, s'il vous plaît."),
    ("es", "Hola. Para ventas, marque uno. Para soporte, marque dos. Gracias por su llamada."),
    ("it", "Buongiorno. Il suo numero di pratica è trecentoquarantadue. Arrivederci."),
    ("pt", "Olá, obrigado por ligar. Por favor, digite o número do seu cartão."),
    ("nl", "Goedemiddag. Kies één voor verkoop, twee voor ondersteuning."),
]
ENGLISH_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-rp"]
RATES = [130, 175, 260]


def requests() -> list[tuple[str, str, int]]:
    """(text, language, rate): every English text in every English voice at a rate that
    varies with it, and the other languages at every rate."""
    out = []
    texts = SENTENCES + NUMBERS + NAMES
    for v, voice in enumerate(ENGLISH_VOICES):
        for t, text in enumerate(texts):
            out.append((text, voice, RATES[(t + v) % len(RATES)]))
    for language, text in OTHER_LANGUAGES:
        for rate in RATES:
            out.append((text, language, rate))
    return out


def corpus_key() -> str:
    return hashlib.sha256(repr(requests()).encode()).hexdigest()[:16]


def render(out: Path) -> None:
    from ivr.media.tts_worker import EspeakRenderer

    renderer = EspeakRenderer()
    gap = np.zeros(2400, dtype=np.int16)  # 300 ms between prompts, as between verbs
    parts = []
    for text, language, rate in requests():
        parts += [renderer.render(text, None, language, rate), gap]
    np.save(out, np.concatenate(parts))


def load(cache_dir: Path) -> np.ndarray:
    """The corpus (int16, 8 kHz), rendered once into ``cache_dir``."""
    path = Path(cache_dir) / f"tts-corpus-{corpus_key()}.npy"
    if not path.exists():
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        subprocess.run([sys.executable, "-m", "tests.media.tts_corpus", str(tmp)], cwd=root, env=env,
                       check=True, timeout=300)
        tmp.replace(path)
    return np.load(path)


if __name__ == "__main__":
    render(Path(sys.argv[1]))

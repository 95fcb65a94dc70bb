"""Only for the native media I/O extension (ivr/rtp/_mmsg_build.py, cffi API mode): compiled
from source by ``pip install`` (also ``-e``); everything else is in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["ivr/rtp/_mmsg_build.py:ffibuilder"])

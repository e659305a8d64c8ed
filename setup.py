"""Shim so Beam's --setup_file (Dataflow worker staging) can build the package; config is in setup.cfg."""

from setuptools import setup

setup()

# The cffi extension is declared here because cffi_modules has no pyproject.toml key; everything else is there.
from setuptools import setup

setup(cffi_modules=["engine/_build.py:ffibuilder"])

"""Build the optional C RDP kernel; everything else is declared in pyproject.toml.

The kernel is optional: without a C compiler the package installs and falls back to a slower numpy kernel.
"""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("sketchprep._rdp", ["sketchprep/_rdp.c"], optional=True, extra_compile_args=["-O3"]),
    ]
)

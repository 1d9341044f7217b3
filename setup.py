"""Build of the optional C accelerator ``beamlink.etf._speedups`` (metadata is in pyproject.toml).

``optional=True``: without a working compiler the build of the extension is skipped, the
installation still succeeds and beamlink uses its pure-Python codec.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "beamlink.etf._speedups",
            sources=["src/beamlink/etf/_speedups.c"],
            optional=True,
        )
    ]
)

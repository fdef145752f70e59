"""Builds the LD_PRELOAD interposer with the package; optional, so that installing never fails for it.

Without a C compiler trainio still captures at the Python level, and says that C-level reads
(numpy.fromfile, HDF5, native decoders) are not covered.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "trainio.tracer._interpose",
            sources=["tracer/_interpose.c"],
            libraries=["dl", "pthread"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        # The per-sample timing of the DataLoader hooks; without it (no compiler, another Python)
        # the same classes run in Python, about half a microsecond slower per sample.
        Extension(
            "trainio.tracer._samplehook",
            sources=["tracer/_samplehook.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)

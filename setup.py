"""Builds greentop's compiled sampler (``greentop._sampler``) from ``sampler_ext/``."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "greentop._sampler",
        sources=["sampler_ext/_sampler.pyx"],
        include_dirs=["sampler_ext"],
        depends=["sampler_ext/gt_support.h"],
        libraries=["dl"],
        extra_compile_args=["-O2"],
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}))

"""The engine's one compiled module: the fused scoring kernel (engine/recipes/_fused.pyx + fused_top_k.h).

Everything else about the package is in pyproject.toml; this file only declares the extension.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

fused = Extension(
    "engine.recipes._fused",
    ["engine/recipes/_fused.pyx"],
    include_dirs=["engine/recipes"],
    depends=["engine/recipes/fused_top_k.h"],
    extra_compile_args=["-O3"],
)

setup(ext_modules=cythonize([fused], compiler_directives={"language_level": "3"}))

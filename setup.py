"""The engine's one compiled module, engine.recipes._kernels: the fused scoring kernel (fused_top_k.h) and the
ALS conjugate-gradient sweep (als_cg.h), wrapped by _kernels.pyx.

Everything else about the package is in pyproject.toml; this file only declares the extension.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

kernels = Extension(
    "engine.recipes._kernels",
    ["engine/recipes/_kernels.pyx"],
    include_dirs=["engine/recipes"],
    depends=["engine/recipes/fused_top_k.h", "engine/recipes/als_cg.h"],
    extra_compile_args=["-O3"],
)

setup(ext_modules=cythonize([kernels], compiler_directives={"language_level": "3"}))

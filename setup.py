"""Build the optional compiled metric kernels; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the metrics use their numpy versions
(same results, slower; ``orchestrator.evaluation.metrics.KERNELS`` says which is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("orchestrator.evaluation._kernels", ["orchestrator/evaluation/_kernels.c"], optional=True),
    ]
)

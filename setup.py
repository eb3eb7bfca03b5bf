"""The ``lora-orchestrator`` distribution (import package ``orchestrator``): the wheel's layout and the optional
compiled metric kernels; everything else is in pyproject.toml.

The repository keeps ``migrations/``, ``kohya_configs/`` and ``datasets/`` at its top level (the users' layout). The
wheel ships them inside the package, so that installing it adds only ``orchestrator`` to site-packages:
``orchestrator/migrations``, ``orchestrator/data/kohya_configs`` and ``orchestrator/data/datasets``.
``orchestrator/resources.py`` finds them in either place; an editable install maps the same package names onto the
top-level folders.

``optional=True``: without a C compiler the install still succeeds and the metrics use their numpy versions
(same results, slower; ``orchestrator.evaluation.metrics.KERNELS`` says which is in use).
"""

from setuptools import Extension, find_namespace_packages, setup

# package name in the wheel -> folder of the repository
SHIPPED_FOLDERS = {
    "orchestrator.migrations": "migrations",
    "orchestrator.data.kohya_configs": "kohya_configs",
    "orchestrator.data.datasets": "datasets",
}
SHIPPED_FILES = ["*.py", "*.mako", "*.toml", "*.md", "*.png", "*.txt"]


def shipped_packages() -> list[str]:
    """Each shipped folder and every folder below it (setuptools copies data files package by package)."""
    packages = []
    for package, folder in SHIPPED_FOLDERS.items():
        below = find_namespace_packages(where=folder, exclude=["__pycache__", "*.__pycache__"])
        packages += [package] + [f"{package}.{name}" for name in below]
    return packages


setup(
    packages=find_namespace_packages(include=["orchestrator", "orchestrator.*"]) + shipped_packages(),
    package_dir=SHIPPED_FOLDERS,
    package_data={"orchestrator": ["data/*.*", "kohya/*.json", "ui/templates/*.html", "ui/static/*.*",
                                   "ui/static/vendor/*"], **dict.fromkeys(shipped_packages(), SHIPPED_FILES)},
    ext_modules=[
        Extension("orchestrator.evaluation._kernels", ["orchestrator/evaluation/_kernels.c"], optional=True),
    ],
)

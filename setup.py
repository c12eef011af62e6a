"""Install: pip install -e .   (extras: [test], [gpu], [notebooks])."""
from setuptools import find_packages, setup

setup(
    name="dynamics",
    version="0.1.0",
    description="Pure-functional JAX models, compiled training loops and analysis "
    "for research on training dynamics.",
    python_requires=">=3.10",
    packages=find_packages(include=["dynamics", "dynamics.*", "analysis", "analysis.*",
                                    "experiments", "experiments.*"]),
    install_requires=[
        "jax>=0.6",
        "flax",
        "optax",
        "chex",
        "absl-py",
        "orbax-checkpoint",
        "matplotlib",
        "ml_collections",
        "scikit-learn",
        "numpy",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "nbclient", "nbformat", "ipykernel"],
        "gpu": ["jax[cuda12]"],
        "notebooks": ["jupyter", "ipykernel", "nbformat"],
    },
)

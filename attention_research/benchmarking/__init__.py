"""Speed and memory of the attention variants against jax.nn, PyTorch and Flax: `python -m experiments.benchmark`."""

from attention_research.benchmarking.runner import run
from attention_research.benchmarking.workloads import VARIANTS, WORKLOADS

__all__ = ['run', 'VARIANTS', 'WORKLOADS']

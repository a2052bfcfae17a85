import gc
import os

import pytest

# Tests run on the CPU with tiny shapes, so compiling dominates their time: LLVM's cheapest optimisation level
# cuts the suite's time by about a third (programs stay exact; they only run slower, which tiny shapes do
# not feel), and one thread per op keeps XLA from grabbing every core for a tiny op.
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


@pytest.fixture(autouse=True, scope='module')
def _release_caches_after_each_module():
  """A test worker lives for the whole suite: without this, every compiled program and every loaded task of
  the earlier modules stays in its memory, and two workers together grow past what the machine holds."""
  yield
  import jax
  from attention_research.training import loop
  loop._OBJECTIVES.clear()
  loop._STEPS.clear()
  jax.clear_caches()
  gc.collect()

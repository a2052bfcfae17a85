import gc
import os

import pytest

# Tests run on the CPU with tiny shapes, so compiling dominates their time: LLVM's cheapest optimisation level
# cuts the suite's time by about a third (programs stay exact; they only run slower, which tiny shapes do
# not feel), and one thread per op keeps XLA from grabbing every core for a tiny op.
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


# A worker releases its caches only past this resident size: releasing after every module cost about 0.6 s of
# garbage collection per module (about 180 modules) and recompiled the programs that later modules share.
RELEASE_ABOVE_BYTES = 3 << 30


def _resident_bytes() -> int:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


@pytest.fixture(autouse=True, scope='module')
def _release_caches_after_each_module():
  """A test worker lives for the whole suite: without this, every compiled program and every loaded task of
  the earlier modules stays in its memory, and two workers together grow past what the machine holds."""
  yield
  if os.path.exists('/proc/self/statm') and _resident_bytes() < RELEASE_ABOVE_BYTES:
    return
  import jax
  from attention_research.training import loop
  loop._OBJECTIVES.clear()
  loop._STEPS.clear()
  jax.clear_caches()
  gc.collect()

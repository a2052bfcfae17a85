import os

# Tests run on the CPU with tiny shapes, so compiling dominates their time: LLVM's cheapest optimisation level
# cuts the suite's time by about a third (programs stay exact; they only run slower, which tiny shapes do
# not feel), and one thread per op keeps XLA from grabbing every core for a tiny op.
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

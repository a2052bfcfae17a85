import os

# Tests run on the CPU with small shapes; keep XLA from grabbing every core for one tiny op.
os.environ.setdefault('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

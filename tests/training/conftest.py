import os
import sys

# The fake task and tiny model are importable by name ('training_fakes:TinyClassifier') from configs.
sys.path.insert(0, os.path.dirname(__file__))

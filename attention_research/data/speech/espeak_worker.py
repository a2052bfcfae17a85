"""Synthesises a list of utterances in a fresh process: `python espeak_worker.py IN.json OUT.npz`.

libespeak-ng carries synthesis state from one utterance to the next (filter
memories, pitch flutter phase), so the same utterance can come out slightly
differently depending on what was spoken before in the process. A fresh
process per fixed shard, speaking its utterances in a fixed order, makes the
audio bit-identical from run to run. It is run as a script, not as part of
the package, so it starts without importing TensorFlow.
"""

import json
import sys

import numpy as np

from espeak_ctypes import Espeak  # pylint: disable=import-error  (sibling file; run as a script)


def main(spec_path: str, out_path: str) -> None:
  with open(spec_path) as f:
    utterances = json.load(f)
  engine = Espeak()
  audio = [engine.say(u['text'], voice=u['voice'], rate=u['rate'], pitch=u['pitch'], seed=u['seed'])
           for u in utterances]
  lengths = np.asarray([len(a) for a in audio], np.int64)
  flat = np.concatenate(audio) if audio else np.zeros((0,), np.int16)
  np.savez(out_path, audio=flat.astype(np.int16), lengths=lengths, sample_rate=engine.sample_rate)


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2])

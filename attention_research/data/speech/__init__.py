"""Speech synthesis for the spoken_digits task (espeak-ng from a pip wheel)."""

"""Minimal ctypes binding to the libespeak-ng shipped in `espeakng-loader`.

Imports only the standard library, numpy and espeakng_loader, because
espeak_worker.py runs it in a bare interpreter (see there for why).
"""

from __future__ import annotations

import ctypes

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_EE_OK = 0
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
  """One espeak-ng instance. The library keeps global state, so use one per process."""

  def __init__(self):
    import espeakng_loader
    self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
    self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                       ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
    if rate <= 0:
      raise RuntimeError(f'espeak-ng failed to initialise (returned {rate}).')
    self.sample_rate = rate
    self._chunks: list[np.ndarray] = []
    self._callback = _CALLBACK(self._collect)  # kept alive: the library holds a pointer to it
    self._lib.espeak_SetSynthCallback(self._callback)

  def _collect(self, wav, num_samples, events):
    del events
    if wav and num_samples > 0:
      self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    return 0

  def say(self, text: str, *, voice: str, rate: int, pitch: int, seed: int) -> np.ndarray:
    """int16 samples at `self.sample_rate`."""
    if self._lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
      raise ValueError(f'espeak-ng has no voice {voice!r}.')
    self._lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
    self._lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
    # Breath noise in voices such as klatt uses the library's generator.
    self._lib.espeak_ng_SetRandSeed(int(seed))
    self._chunks = []
    data = text.encode()
    status = self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
    if status != _EE_OK:
      raise RuntimeError(f'espeak-ng failed to synthesise {text!r} (status {status}).')
    self._lib.espeak_Synchronize()
    return np.concatenate(self._chunks) if self._chunks else np.zeros((0,), np.int16)

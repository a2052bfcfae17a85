"""Spatial transformer (Jaderberg et al. 2015): a localisation net predicts an affine map, a bilinear sampler
applies it, and both are differentiable, so the net learns to rectify its input from the task's loss alone.

Dimension letters: B batch, H W input height / width, h w output height / width, C channels.
Coordinates are normalised as in the paper: (x, y) in [-1, 1], pixel i of n at (2i + 1) / n - 1 (pixel centres),
and theta [B, 2, 3] maps an output pixel's (x, y, 1) to the input point it samples.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # theta row-major: [[1, 0, 0], [0, 1, 0]]


def _ceil_half(n: int) -> int:
  return -(-n // 2)


def _check_image(image_BHWC):
  if image_BHWC.ndim != 4:
    raise ValueError(f'expected images [B, H, W, C]; got shape {image_BHWC.shape}.')


def bilinear_sample(image_BHWC, y_Bhw, x_Bhw):
  """image sampled at pixel coordinates (row y, column x) [B, h, w] -> [B, h, w, C].

  Points outside the image see zeros: each of the four neighbours outside contributes 0, which is
  `jax.scipy.ndimage.map_coordinates(order=1, mode='constant', cval=0)` per channel. The weights are
  differentiable in the coordinates, which is what lets gradients reach the localisation net.
  """
  _check_image(image_BHWC)
  if y_Bhw.shape != x_Bhw.shape or y_Bhw.ndim != 3 or y_Bhw.shape[0] != image_BHWC.shape[0]:
    raise ValueError(f'expected coordinates [B, h, w] with B={image_BHWC.shape[0]}; got y {y_Bhw.shape}, '
                     f'x {x_Bhw.shape}.')
  B, H, W, C = image_BHWC.shape
  y0, x0 = jnp.floor(y_Bhw), jnp.floor(x_Bhw)
  flat_BPC = image_BHWC.reshape(B, H * W, C)
  out = 0.0
  for dy in (0, 1):
    for dx in (0, 1):
      yi, xi = y0 + dy, x0 + dx
      weight = (1.0 - jnp.abs(y_Bhw - yi)) * (1.0 - jnp.abs(x_Bhw - xi))
      inside = (yi >= 0) & (yi <= H - 1) & (xi >= 0) & (xi <= W - 1)
      index = (jnp.clip(yi, 0, H - 1) * W + jnp.clip(xi, 0, W - 1)).astype(jnp.int32).reshape(B, -1, 1)
      pixels = jnp.take_along_axis(flat_BPC, index, axis=1).reshape(*y_Bhw.shape, C)
      out = out + jnp.where(inside, weight, 0.0)[..., None] * pixels
  return out


def affine_grid(theta_B23, out_hw: tuple[int, int]):
  """Normalised input coordinates (x, y), each [B, h, w], that each output pixel samples."""
  if theta_B23.ndim != 3 or theta_B23.shape[1:] != (2, 3):
    raise ValueError(f'expected theta [B, 2, 3]; got shape {theta_B23.shape}.')
  h, w = out_hw
  ys = (2.0 * jnp.arange(h) + 1.0) / h - 1.0
  xs = (2.0 * jnp.arange(w) + 1.0) / w - 1.0
  y_hw, x_hw = jnp.meshgrid(ys, xs, indexing='ij')
  grid_3P = jnp.stack([x_hw.ravel(), y_hw.ravel(), jnp.ones(h * w)])
  src_B2P = jnp.einsum('bij,jp->bip', theta_B23.astype(jnp.float32), grid_3P)
  return src_B2P[:, 0].reshape(-1, h, w), src_B2P[:, 1].reshape(-1, h, w)


def warp(image_BHWC, theta_B23, out_hw: tuple[int, int] | None = None):
  """The image resampled through theta onto an output grid of out_hw (default: the input's size)."""
  _check_image(image_BHWC)
  if theta_B23.shape[0] != image_BHWC.shape[0]:
    raise ValueError(f'theta {theta_B23.shape} and image {image_BHWC.shape} differ in batch size.')
  H, W = image_BHWC.shape[1:3]
  x_Bhw, y_Bhw = affine_grid(theta_B23, out_hw or (H, W))
  # normalised -> pixel index coordinates
  return bilinear_sample(image_BHWC, ((y_Bhw + 1.0) * H - 1.0) / 2.0, ((x_Bhw + 1.0) * W - 1.0) / 2.0)


class LocalisationNet(nnx.Module):
  """image [B, H, W, C] -> theta [B, 2, 3]: pool x pool average pooling (where to look needs less detail than
  what is there, and the net's cost falls with the square of it), two stride-2 convolutions, a hidden layer, and
  an affine head initialised to zero weights and the identity bias, so training starts from the identity.

  `scale` multiplies the head's change to theta: with Adam it sets how fast theta moves per step (a learning rate
  for the transform that leaves the rest of the model's alone). `bounded` passes that change through tanh, so no
  entry of theta moves more than 1 from the identity: the output's centre stays on the input, and a transform
  cannot wander off it onto blank canvas, where the sampler's gradient is zero and the transform would stay lost.
  """

  def __init__(self, image_hw: tuple[int, int], channels: int, *, features: int = 16, hidden: int = 64,
               scale: float = 1.0, pool: int = 1, bounded: bool = False, rngs: nnx.Rngs):
    if pool < 1 or min(image_hw) < pool:
      raise ValueError(f'the localisation net needs pool >= 1 and images of at least pool x pool; got pool {pool}, '
                       f'images {image_hw}.')
    self.scale = scale
    self.pool = pool
    self.bounded = bounded
    self.conv1 = nnx.Conv(channels, features // 2, kernel_size=(5, 5), strides=(2, 2), rngs=rngs)
    self.conv2 = nnx.Conv(features // 2, features, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)
    # two 'SAME' stride-2 convolutions halve each side twice, rounding up
    h, w = image_hw[0] // pool, image_hw[1] // pool
    flat = _ceil_half(_ceil_half(h)) * _ceil_half(_ceil_half(w)) * features
    self.hidden = nnx.Linear(flat, hidden, rngs=rngs)
    self.head = nnx.Linear(hidden, 6, kernel_init=nnx.initializers.zeros,
                           bias_init=lambda *_: jnp.asarray(IDENTITY, jnp.float32), rngs=rngs)

  def __call__(self, image_BHWC):
    h = image_BHWC
    if self.pool > 1:
      h = nnx.avg_pool(h, window_shape=(self.pool, self.pool), strides=(self.pool, self.pool))
    h = nnx.relu(self.conv1(h))
    h = nnx.relu(self.conv2(h))
    h = nnx.relu(self.hidden(h.reshape(h.shape[0], -1)))
    identity = jnp.asarray(IDENTITY, jnp.float32)
    # Zero head weights and the identity bias, scaled about the identity: theta starts at the identity whatever
    # the scale, and the scale only changes how far each step moves it.
    change = self.scale * (self.head(h) - identity)
    return (identity + (jnp.tanh(change) if self.bounded else change)).reshape(-1, 2, 3)


class SpatialTransformer(nnx.Module):
  """image [B, H, W, C] -> rectified image [B, h, w, C]; `theta(image)` gives the transform it applies."""

  def __init__(self, image_hw: tuple[int, int], channels: int, *, out_hw: tuple[int, int] | None = None,
               features: int = 16, hidden: int = 64, scale: float = 1.0, pool: int = 1, bounded: bool = False,
               rngs: nnx.Rngs):
    self.image_hw = tuple(image_hw)
    self.out_hw = tuple(out_hw or image_hw)
    self.localisation = LocalisationNet(self.image_hw, channels, features=features, hidden=hidden, scale=scale,
                                        pool=pool, bounded=bounded, rngs=rngs)

  def theta(self, image_BHWC):
    _check_image(image_BHWC)
    if tuple(image_BHWC.shape[1:3]) != self.image_hw:
      raise ValueError(f'expected images [B, {self.image_hw[0]}, {self.image_hw[1]}, C]; got {image_BHWC.shape}.')
    return self.localisation(jnp.asarray(image_BHWC, jnp.float32))

  def __call__(self, image_BHWC):
    image_BHWC = jnp.asarray(image_BHWC, jnp.float32)
    return warp(image_BHWC, self.theta(image_BHWC), self.out_hw)


__all__ = ['IDENTITY', 'LocalisationNet', 'SpatialTransformer', 'affine_grid', 'bilinear_sample', 'warp']

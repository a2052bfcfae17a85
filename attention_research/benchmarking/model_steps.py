"""Whole-model training steps: this project's Transformer encoder beside the same architecture in PyTorch.

One step = forward, backward and an AdamW update of a 4-layer, width-256, 4-head pre-LN encoder (MLP 1024,
tanh-GELU, sinusoidal positions, mean pooling, a 10-class head) on a batch of 8 token sequences. The PyTorch
side is `torch.nn.TransformerEncoder` of `TransformerEncoderLayer(norm_first=True, batch_first=True)` (its
attention runs `scaled_dot_product_attention`) with `torch.optim.AdamW`. PyTorch's attention projections carry
biases that the project's layer leaves out, so the parameter counts differ by 4 x 4 x 256 = 4096 of about
3.4 million; both counts are reported. Compile time is reported apart (JAX only; PyTorch runs eagerly).

    rows = model_steps.run(lengths=(512, 2048), repeats=3)
    rows += model_steps.run_decode(new_tokens=256, repeats=3)

Decoding: greedy generation of 256 tokens after a one-token prompt by the cached `DecoderLM` (the same 4 layers,
tied embeddings; `generate` under nnx.jit), beside a PyTorch loop over the same pre-LN decoder with a
preallocated key/value cache and `scaled_dot_product_attention` under `torch.no_grad()`.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from attention_research.attention import positional
from attention_research.benchmarking import baselines, timing
from attention_research.models import transformer

WIDTH, LAYERS, HEADS, MLP, BATCH, VOCAB, CLASSES = 256, 4, 4, 1024, 8, 1000, 10
LEARNING_RATE = 1e-3


def _batch(L: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, VOCAB, size=(BATCH, L)).astype(np.int32)  # no padding: pooling is a plain mean
  return tokens, rng.integers(0, CLASSES, size=(BATCH,)).astype(np.int32)


def _sinusoidal_table(torch, length: int):
  """The project's own position table (attention.positional.sinusoidal) as a torch buffer."""
  return torch.from_numpy(np.array(positional.sinusoidal(length, WIDTH)))


def jax_step(L: int, variant: str) -> tuple[timing.Prepared, int]:
  """The project's Encoder with `variant` attention: a compiled, donated AdamW step; (case, parameters)."""
  cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=WIDTH, num_heads=HEADS, num_encoder_layers=LAYERS,
                                      mlp_dim=MLP, max_length=L, num_classes=CLASSES, attention=variant)
  model = transformer.Encoder(cfg, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adamw(LEARNING_RATE)

  def step(params, opt_state, tokens, labels):
    def loss_fn(params):
      logits = nnx.merge(graphdef, params, rest)(tokens)
      return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return loss, optax.apply_updates(params, updates), opt_state

  tokens, labels = (jnp.asarray(x) for x in _batch(L))
  state = [params, tx.init(params)]
  compiled, seconds, temp = timing.compile_jax_donated(step, (0, 1), *state, tokens, labels)

  def call():
    loss, state[0], state[1] = compiled(state[0], state[1], tokens, labels)
    return jax.block_until_ready(loss)

  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  return timing.Prepared(call, seconds, temp, note=f'{count} parameters'), count


def torch_step(L: int) -> tuple[timing.Prepared | str, int | None]:
  torch = baselines.torch_module()
  if torch is None:
    return baselines.TORCH_MISSING, None
  nn, F = torch.nn, torch.nn.functional
  torch.manual_seed(0)

  class Encoder(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(VOCAB, WIDTH)
      layer = nn.TransformerEncoderLayer(WIDTH, HEADS, MLP, dropout=0.0, activation=lambda x: F.gelu(
          x, approximate='tanh'), batch_first=True, norm_first=True)
      self.stack = nn.TransformerEncoder(layer, LAYERS, norm=nn.LayerNorm(WIDTH), enable_nested_tensor=False)
      self.head = nn.Linear(WIDTH, CLASSES)
      self.register_buffer('positions', _sinusoidal_table(torch, L))

    def forward(self, tokens):
      x = self.embed(tokens) * math.sqrt(WIDTH) + self.positions[:tokens.shape[1]]
      return self.head(self.stack(x).mean(1))

  model = Encoder()
  opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
  tokens, labels = (torch.from_numpy(x).long() for x in _batch(L))

  def call():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(tokens), labels)
    loss.backward()
    opt.step()
    return loss.item()

  count = sum(p.numel() for p in model.parameters())
  return timing.Prepared(call, note=f'{count} parameters'), count


def run(lengths=(512, 2048), variants=('flash', 'dot_product'), repeats: int = 3) -> list[dict]:
  """Per length: every case timed interleaved; rows with ms per step, the speedup over PyTorch, compile s."""
  rows = []
  for L in lengths:
    cases, counts = {}, {}
    for variant in variants:
      cases[f'project ({variant})'], counts[f'project ({variant})'] = jax_step(L, variant)
    cases['torch'], counts['torch'] = torch_step(L)
    timed = timing.run_interleaved(cases, repeats)
    base = timed['torch'].median_s
    for name, t in timed.items():
      rows.append({'T': L, 'case': name, 'ms': None if t.median_s is None else 1e3 * t.median_s,
                   'speedup_vs_torch': base / t.median_s if base and t.median_s else None,
                   'compile_s': t.compile_s, 'parameters': counts[name], 'skipped': t.skipped})
  return rows


def table(rows: list[dict]) -> str:
  lines = [f'| T (decode: new tokens) | case | ms per step or generation, B={BATCH} | vs torch | compile s | parameters |',
           '|---:|---|---:|---:|---:|---:|']
  for r in rows:
    if r['skipped']:
      lines.append(f"| {r['T']} | {r['case']} | {r['skipped']} | | | |")
      continue
    speed = '' if r['speedup_vs_torch'] is None else f"{r['speedup_vs_torch']:.2f}x"
    compile_s = '' if r['compile_s'] is None else f"{r['compile_s']:.1f}"
    lines.append(f"| {r['T']} | {r['case']} | {r['ms']:.0f} | {speed} | {compile_s} | {r['parameters']} |")
  return '\n'.join(lines)


def jax_decode(new_tokens: int, variant: str) -> tuple[timing.Prepared, int]:
  cfg = transformer.TransformerConfig(vocab_size=VOCAB, d_model=WIDTH, num_heads=HEADS, num_decoder_layers=LAYERS,
                                      mlp_dim=MLP, max_length=new_tokens + 1, attention=variant)
  model = transformer.DecoderLM(cfg, rngs=nnx.Rngs(0))
  prompt = jnp.full((BATCH, 1), cfg.bos_id, jnp.int32)
  generate = nnx.jit(lambda m, p: m.generate(p, max_new_tokens=new_tokens))
  start = time.perf_counter()
  jax.block_until_ready(generate(model, prompt))  # the first call compiles
  seconds = time.perf_counter() - start
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  return timing.Prepared(lambda: jax.block_until_ready(generate(model, prompt)), seconds,
                         note=f'{count} parameters'), count


def torch_decode(new_tokens: int) -> tuple[timing.Prepared | str, int | None]:
  torch = baselines.torch_module()
  if torch is None:
    return baselines.TORCH_MISSING, None
  nn, F = torch.nn, torch.nn.functional
  torch.manual_seed(0)
  H = WIDTH // HEADS

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.ln1, self.ln2 = nn.LayerNorm(WIDTH), nn.LayerNorm(WIDTH)
      self.qkv, self.out = nn.Linear(WIDTH, 3 * WIDTH, bias=False), nn.Linear(WIDTH, WIDTH, bias=False)
      self.up, self.down = nn.Linear(WIDTH, MLP), nn.Linear(MLP, WIDTH)

    def forward(self, x, cache_k, cache_v, t):
      q, k, v = (y.view(BATCH, 1, HEADS, H).transpose(1, 2) for y in self.qkv(self.ln1(x)).split(WIDTH, -1))
      cache_k[:, :, t:t + 1], cache_v[:, :, t:t + 1] = k, v
      a = F.scaled_dot_product_attention(q, cache_k[:, :, :t + 1], cache_v[:, :, :t + 1])
      x = x + self.out(a.transpose(1, 2).reshape(BATCH, 1, WIDTH))
      return x + self.down(F.gelu(self.up(self.ln2(x)), approximate='tanh'))

  class Decoder(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(VOCAB, WIDTH)
      self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
      self.norm = nn.LayerNorm(WIDTH)
      self.register_buffer('positions', _sinusoidal_table(torch, new_tokens + 1))

    def generate(self, first):
      caches = [(torch.empty(BATCH, HEADS, new_tokens, H), torch.empty(BATCH, HEADS, new_tokens, H))
                for _ in self.blocks]
      tokens, out = first, []
      for t in range(new_tokens):
        x = self.embed(tokens)[:, None] * math.sqrt(WIDTH) + self.positions[t]
        for block, (ck, cv) in zip(self.blocks, caches):
          x = block(x, ck, cv, t)
        tokens = (self.norm(x)[:, 0] @ self.embed.weight.T).argmax(-1)  # tied output embedding
        out.append(tokens)
      return torch.stack(out, 1)

  model = Decoder().eval()
  first = torch.ones(BATCH, dtype=torch.long)

  def call():
    with torch.no_grad():
      return model.generate(first)

  count = sum(p.numel() for p in model.parameters())
  return timing.Prepared(call, note=f'{count} parameters'), count


def run_decode(new_tokens: int = 256, variants=('dot_product',), repeats: int = 3) -> list[dict]:
  cases, counts = {}, {}
  for variant in variants:
    cases[f'project decode ({variant})'], counts[f'project decode ({variant})'] = jax_decode(new_tokens, variant)
  cases['torch decode'], counts['torch decode'] = torch_decode(new_tokens)
  timed = timing.run_interleaved(cases, repeats)
  base = timed['torch decode'].median_s
  return [{'T': new_tokens, 'case': name, 'ms': None if t.median_s is None else 1e3 * t.median_s,
           'speedup_vs_torch': base / t.median_s if base and t.median_s else None, 'compile_s': t.compile_s,
           'parameters': counts[name], 'skipped': t.skipped} for name, t in timed.items()]


if __name__ == '__main__':
  print(table(run() + run_decode()))

"""The models workload: the project's encoder step trains, and the PyTorch peers match its architecture."""

import math

import pytest

from attention_research.benchmarking import baselines, model_steps


def test_project_step_trains_and_reports_compile_time(monkeypatch):
  monkeypatch.setattr(model_steps, 'BATCH', 2)
  case, count = model_steps.jax_step(16, 'dot_product')
  losses = [float(case.call()) for _ in range(4)]  # the same batch: AdamW must fit it
  assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
  assert case.compile_s > 0 and count > 3_000_000


@pytest.mark.skipif(baselines.torch_module() is None, reason='torch is optional (a benchmark peer only)')
def test_torch_peers_have_the_projects_parameter_counts(monkeypatch):
  monkeypatch.setattr(model_steps, 'BATCH', 2)
  _, project = model_steps.jax_step(16, 'dot_product')
  _, torch_count = model_steps.torch_step(16)
  assert torch_count - project == model_steps.LAYERS * 4 * model_steps.WIDTH  # torch's attention biases
  _, project_lm = model_steps.jax_decode(4, 'dot_product')
  case, torch_lm = model_steps.torch_decode(4)
  assert torch_lm == project_lm
  assert tuple(case.call().shape) == (2, 4)

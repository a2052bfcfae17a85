import pytest
import training_fakes as fakes

from attention_research.training import config_files


def test_parse_arg_types_and_flags():
  opts = config_files.parse_arg('attention=linear, smoke,steps=5,lr=3e-4',
                                {'attention': 'dot_product', 'smoke': False, 'steps': 1, 'lr': 1e-3})
  assert opts == {'attention': 'linear', 'smoke': True, 'steps': 5, 'lr': 3e-4}
  assert config_files.parse_arg(None, {'smoke': False}) == {'smoke': False}


@pytest.mark.parametrize('arg, match', [
    ('colour=red', "unknown config option 'colour'.*known options"),
    ('steps=abc', "steps='abc' is not a int"),
    ('steps', "needs a value"),
])
def test_parse_arg_errors(arg, match):
  with pytest.raises(ValueError, match=match):
    config_files.parse_arg(arg, {'steps': 1, 'smoke': False})


def test_config_dict_is_locked_and_complete():
  c = fakes.tiny_config()
  assert c.is_locked
  with pytest.raises(AttributeError):
    c.train.stepz = 3
  # every dataclass field is present, so any of them can be overridden from the command line
  assert set(c.optim) >= {'learning_rate', 'schedule', 'grad_clip_norm', 'b2'}
  assert c.model.dropout == 0.1 and c.model.vocab_size is None

import pytest
import training_fakes as fakes

from attention_research.training import config as config_lib
from attention_research.training.config import ExperimentConfig


def test_parse_arg_types_and_flags():
  opts = config_lib.parse_arg('attention=linear, smoke,steps=5,lr=3e-4',
                              {'attention': 'dot_product', 'smoke': False, 'steps': 1, 'lr': 1e-3})
  assert opts == {'attention': 'linear', 'smoke': True, 'steps': 5, 'lr': 3e-4}
  assert config_lib.parse_arg(None, {'smoke': False}) == {'smoke': False}


@pytest.mark.parametrize('arg, match', [
    ('colour=red', "unknown config option 'colour'.*known options"),
    ('steps=abc', "steps='abc' is not a int"),
    ('steps', "needs a value"),
])
def test_parse_arg_errors(arg, match):
  with pytest.raises(ValueError, match=match):
    config_lib.parse_arg(arg, {'steps': 1, 'smoke': False})


def test_config_dict_is_locked_and_complete():
  c = fakes.tiny_config()
  assert c.is_locked
  with pytest.raises(AttributeError):
    c.train.stepz = 3
  # every dataclass field is present, so any of them can be overridden from the command line
  assert set(c.optim) >= {'learning_rate', 'schedule', 'grad_clip_norm', 'b2'}
  assert c.model.dropout == 0.1 and c.model.vocab_size is None


@pytest.mark.parametrize('field, value, match', [
    ('train.steps', 0, r'config\.train\.steps must be >= 1, got 0'),
    ('train.batch_size', 2.5, r'config\.train\.batch_size must be an integer'),
    ('optim.learning_rate', -1.0, r'config\.optim\.learning_rate must be > 0'),
    ('optim.schedule', 'warp', r"config\.optim\.schedule must be one of"),
    ('optim.name', 'rmsprop', r"config\.optim\.name must be one of"),
    ('data.size', 'huge', r"config\.data\.size must be one of"),
    ('compare.seed_mode', 'parallel', r"config\.compare\.seed_mode must be one of"),
])
def test_invalid_values_name_their_field(field, value, match):
  d = ExperimentConfig.from_config_dict(fakes.tiny_config()).model_dump()
  section, key = field.split('.')
  d[section][key] = value
  with pytest.raises(ValueError, match=match):
    ExperimentConfig.from_config_dict(d)


def test_unknown_fields_name_themselves():
  d = ExperimentConfig.from_config_dict(fakes.tiny_config()).model_dump()
  d['train']['stepz'] = 3
  with pytest.raises(ValueError, match=r'unknown field config\.train\.stepz'):
    ExperimentConfig.from_config_dict(d)
  with pytest.raises(ValueError, match=r'unknown field config\.model\.colour'):
    fakes.tiny_config(**{'model.colour': 'red'})
  del d['train']['stepz']
  with pytest.raises(ValueError, match=r'config\.variant_fields names config\.model\.nope'):
    ExperimentConfig.from_config_dict(dict(d, variant_fields='model.nope'))


def test_replace_validates():
  cfg = ExperimentConfig.from_config_dict(fakes.tiny_config())
  assert cfg.replace(**{'optim.learning_rate': 0.1}).optim.learning_rate == 0.1
  with pytest.raises(ValueError, match=r'config\.optim\.nope does not exist'):
    cfg.replace(**{'optim.nope': 1})

import pytest
import training_fakes as fakes

from attention_research.training.config import ExperimentConfig


@pytest.mark.parametrize('field, value, match', [
    ('train.steps', 0, r'config\.train\.steps must be >= 1, got 0'),
    ('train.batch_size', 2.5, r'config\.train\.batch_size must be an integer'),
    ('optim.learning_rate', -1.0, r'config\.optim\.learning_rate must be > 0'),
    ('optim.schedule', 'warp', r"config\.optim\.schedule must be one of"),
    ('optim.name', 'rmsprop', r"config\.optim\.name must be one of"),
    ('data.size', 'huge', r"config\.data\.size must be one of"),
    ('data.pad_scope', 'batch', r"config\.data\.pad_scope must be one of"),
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

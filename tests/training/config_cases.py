"""Config arguments the config tests share: each config file's smoke runs and the comparisons that train them."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(f for f in os.listdir(os.path.join(ROOT, 'configs')) if f.endswith('.py') and f[0] != '_')

# A smoke argument of every config file and the metric its evaluation must report.
SMOKE = [
    ('classification.py:task=mqar,smoke', 'accuracy'),
    ('classification.py:smoke', 'accuracy'),
    ('classification.py:task=digits,smoke', 'accuracy'),
    ('translation.py:smoke', 'chrf'),
    ('translation.py:model=rnn,smoke', 'chrf'),
    ('lm.py:smoke', 'perplexity'),
    ('captioning.py:smoke', 'bleu'),
    ('captioning.py:decoder=transformer,attention=linear,smoke', 'bleu'),
    ('asr.py:smoke', 'cer'),
    ('asr.py:model=las,smoke', 'cer'),
    ('ner.py:smoke', 'f1'),
    ('qa.py:smoke', 'accuracy'),
    ('qa.py:model=transformer,task=19,smoke', 'accuracy'),
    ('recall.py:smoke', 'accuracy'),
    ('recall.py:task=selective_copying,smoke', 'accuracy'),
    ('sentiment.py:smoke', 'accuracy'),
    ('span_qa.py:smoke', 'f1'),
    ('summarization.py:smoke', 'rougeL'),
    ('segmentation.py:smoke', 'mean_iou'),
    ('vqa.py:smoke', 'accuracy'),
    ('stn.py:smoke', 'accuracy'),
    ('detection.py:smoke', 'map'),
]

# Options that switch a config file to another model class (and so to other variant names); every
# discovered file also runs with its plain 'smoke'.
FAMILIES = {
    'translation.py': ['model=rnn'],
    'captioning.py': ['decoder=transformer'],
    'classification.py': ['task=digits'],
    'qa.py': ['model=transformer'],
}
# The smoke arguments test_compare_configs runs through experiments.compare with their default variants.
COMPARED = [f'{name}:{",".join(o for o in (option, "smoke") if o)}'
            for name in CONFIGS for option in [''] + FAMILIES.get(name, [])]

"""reports: generated football match reports and their reference summaries (the final score and the scorers).

A report has three paragraphs (separated by '\n'): the setting, the first half, the second half. Goals are
sentences "<player> scored for <team> in the <minute> minute ."; around them are distractor sentences that
mention players, teams, minutes and even goals without changing the score ("<player> had a goal ruled out for
offside .", "<player> has scored <k> goals this season .", "<player> was booked in the <minute> minute .").

The summary is determined by the salient facts alone:
  "<home> beat <away> 2 - 1 . goals : <scorer> , <scorer> , <scorer> ."   (the winner first)
  "<home> drew with <away> 1 - 1 . goals : <scorer> , <scorer> ."          (a draw: home team first)
  "<home> drew with <away> 0 - 0 . no goals ."
with the scorers in the order of their goals. Writing it needs counting the goals of each team, comparing the
counts and copying the scorers' names in order, and ignoring the distractors.

Splits: train / validation / test share the report lengths (2-5 distractor sentences); `test_ood` has longer
reports with 8-12 distractors (the same teams, players and number of goals, so the summaries are as long).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from attention_research.data import sampling
from attention_research.data.builders import _base
from attention_research.data.pipeline import Ragged
from attention_research.data.task import Task, pad_lengths
from attention_research.data.tokenizers import WordTokenizer, encode_all, from_json

SPLITS = sampling.SPLITS + ('test_ood',)
TEAMS = ('rovers', 'united', 'city', 'athletic', 'wanderers', 'rangers', 'albion', 'county', 'harriers', 'villa')
PLAYERS = ('smith', 'jones', 'brown', 'taylor', 'wilson', 'evans', 'walker', 'wright', 'hughes', 'green', 'hall',
           'wood', 'clarke', 'lewis', 'harris', 'martin', 'cooper', 'ward', 'king', 'baker')
STADIUMS = ('the park', 'the arena', 'the lane', 'the ground', 'the meadow')
DAYS = ('monday', 'tuesday', 'wednesday', 'saturday', 'sunday')
WEATHER = ('rainy', 'sunny', 'windy', 'cold', 'mild')
DISTRACTORS = ('{player} had a goal ruled out for offside .', '{player} has scored {k} goals this season .',
               '{player} was booked in the {minute} minute .', '{player} hit the post in the {minute} minute .',
               '{player} missed a penalty .', '{team} made a substitution in the {minute} minute .',
               'the crowd of {k} thousand sang throughout .', 'the referee waved play on after a foul on {player} .',
               '{player} came off injured .', '{team} had more of the ball .')
GOAL = '{player} scored for {team} in the {minute} minute .'
NUMBERS = tuple(str(k) for k in range(0, 91))


def vocabulary() -> list[str]:
  words = set(TEAMS + PLAYERS + DAYS + WEATHER + NUMBERS)
  for phrase in STADIUMS + DISTRACTORS + (GOAL,):
    words.update(w for w in phrase.split() if not w.startswith('{'))
  words.update('hosted at on . the weather was first half second beat drew with - goals : , no'.split())
  words.update('in'.split())
  return sorted(words)


def _pick(gen, xs):
  return xs[int(gen.integers(len(xs)))]


def _distractor(gen, teams, minute: int) -> str:
  return _pick(gen, DISTRACTORS).format(player=_pick(gen, PLAYERS), team=_pick(gen, teams), k=int(gen.integers(2, 30)),
                                        minute=minute)


def summary_of(home: str, away: str, goals: list[tuple[int, str, str]]) -> str:
  """The reference summary of a match from its goals [(minute, team, scorer), ...] in time order."""
  h = sum(team == home for _, team, _ in goals)
  a = len(goals) - h
  if h == a:
    head = f'{home} drew with {away} {h} - {a}'
  else:
    (w, wg), (l, lg) = sorted([(home, h), (away, a)], key=lambda t: -t[1])
    head = f'{w} beat {l} {wg} - {lg}'
  tail = 'goals : ' + ' , '.join(s for _, _, s in goals) + ' .' if goals else 'no goals .'
  return f'{head} . {tail}'


def make_report(gen, goals: tuple[int, int], distractors: tuple[int, int]) -> dict:
  """{'report': paragraphs joined by '\n', 'summary', 'scorers': [...], 'home', 'away'}."""
  home, away = (TEAMS[i] for i in gen.permutation(len(TEAMS))[:2])
  n_goals = int(gen.integers(goals[0], goals[1] + 1))
  minutes = sorted(int(m) for m in gen.choice(np.arange(1, 91), n_goals, replace=False))
  events = [(m, _pick(gen, (home, away)), _pick(gen, PLAYERS)) for m in minutes]
  n_dis = int(gen.integers(distractors[0], distractors[1] + 1))
  halves = [[], []]
  for minute, team, player in events:
    halves[minute > 45].append((minute, 0, GOAL.format(player=player, team=team, minute=minute)))
  for _ in range(n_dis):
    half = int(gen.integers(2))
    span = (1, 46) if half == 0 else (46, 91)
    minute = int(gen.integers(*span))
    # Distractors sit among the goals of their half in time order (ties keep goals first).
    halves[half].append((minute, 1, _distractor(gen, (home, away), minute)))
  setting = (f'{home} hosted {away} at {_pick(gen, STADIUMS)} on {_pick(gen, DAYS)} . '
             f'the weather was {_pick(gen, WEATHER)} .')
  paragraphs = [setting] + [f'{name} half . ' + ' '.join(s for _, _, s in sorted(h, key=lambda e: e[:2]))
                            for name, h in zip(('first', 'second'), halves)]
  return {'report': '\n'.join(p.strip() for p in paragraphs), 'summary': summary_of(home, away, events),
          'scorers': [p for _, _, p in events], 'home': home, 'away': away}


@dataclasses.dataclass(eq=False)
class ReportsConfig(_base.TaskConfig):
  num_test_ood: int = 100
  goals: tuple[int, int] = (0, 4)
  distractors: tuple[int, int] = (2, 5)
  ood_distractors: tuple[int, int] = (8, 12)


class Reports(_base.InMemoryBuilder):
  """Football match reports with distractor sentences; the summary is the result and the scorers."""

  BUILDER_CONFIGS = [
      ReportsConfig(name='default', num_train=4000, num_validation=200, num_test=200, num_test_ood=200,
                    description='4000 training reports.'),
      ReportsConfig(name='small', num_train=200, num_validation=20, num_test=20, num_test_ood=20,
                    description='Tiny, for tests.'),
  ]

  def features(self):
    return tfds.features.FeaturesDict({
        'report': tfds.features.Text(),  # paragraphs joined by '\n', words by single spaces
        'summary': tfds.features.Text(),
    })

  def metadata(self):
    return {'tokenizer': WordTokenizer(vocabulary()).to_json()}

  def make_splits(self):
    c = self.builder_config
    for name, value, low in (('goals', c.goals, 0), ('distractors', c.distractors, 0),
                             ('ood_distractors', c.ood_distractors, 0)):
      if len(value) != 2 or not low <= value[0] <= value[1]:
        raise ValueError(f'{name} must be (low, high) with {low} <= low <= high, got {value}.')
    if c.goals[1] > 90:
      raise ValueError(f'at most 90 goals (one a minute), got goals={c.goals}.')
    sizes = {**c.sizes(), 'test_ood': c.num_test_ood}
    if sizes['test_ood'] < 1:
      raise ValueError(f'test_ood size must be >= 1, got {sizes["test_ood"]}.')
    draws = sampling.UniqueDraws()
    out = {}
    for split in SPLITS:
      gen = sampling.rng(c.seed, 'reports', split)
      distractors = c.ood_distractors if split == 'test_ood' else c.distractors
      reports = [draws.draw(lambda: make_report(gen, c.goals, distractors), lambda r: r['report'])
                 for _ in range(sizes[split])]
      out[split] = [{'report': r['report'], 'summary': r['summary']} for r in reports]
    return out


def make_task(builder, examples) -> Task:
  tokenizer = from_json(builder.info.metadata['tokenizer'])
  columns = {split: {'inputs': Ragged(encode_all(tokenizer, ex['report'], add_eos=True), dtype=np.int32),
                     'targets': Ragged(encode_all(tokenizer, ex['summary'], add_eos=True), dtype=np.int32)}
             for split, ex in examples.items()}
  lengths = pad_lengths(columns)
  info = {'vocab_size': tokenizer.vocab_size, 'pad_id': 0, 'bos_id': tokenizer.bos_id, 'eos_id': tokenizer.eos_id,
          'max_input_length': lengths['inputs'], 'max_target_length': lengths['targets'], 'pad_lengths': lengths,
          'ood_split': 'test_ood', 'metrics': ('rouge1', 'rouge2', 'rougeL', 'exact_match')}
  return Task(name='reports', kind='seq2seq', info=info, tokenizers={'inputs': tokenizer, 'targets': tokenizer},
              columns=columns, length_key='inputs', main_tokenizer_key='targets')

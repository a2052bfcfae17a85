"""reports at test size: deterministic, disjoint splits, every summary's facts present in and recomputed from its
report."""

import re

import numpy as np

from attention_research.data import cache, loading

GOAL = re.compile(r'^(\w+) scored for (\w+) in the (\d+) minute$')


def independent_summary(report):
  """Reads the teams off the first sentence and the goals off 'X scored for T in the M minute' sentences."""
  paragraphs = report.split('\n')
  assert len(paragraphs) == 3 and paragraphs[1].startswith('first half') and paragraphs[2].startswith('second half')
  first = paragraphs[0].split()
  home, away = first[0], first[2]
  goals = []
  for sentence in ' '.join(paragraphs).split(' . '):
    m = GOAL.match(sentence.strip(' .'))
    if m:
      goals.append((int(m.group(3)), m.group(2), m.group(1)))
  assert [g[0] for g in goals] == sorted(g[0] for g in goals), report  # told in time order
  count = {home: 0, away: 0}
  for _, team, _ in goals:
    count[team] += 1
  if count[home] == count[away]:
    head = f'{home} drew with {away} {count[home]} - {count[away]}'
  else:
    winner = home if count[home] > count[away] else away
    loser = away if winner == home else home
    head = f'{winner} beat {loser} {count[winner]} - {count[loser]}'
  return head + ' . ' + ('goals : ' + ' , '.join(g[2] for g in goals) + ' .' if goals else 'no goals .')


def test_every_summary_is_recomputed_from_its_report_and_its_facts_are_there(build):
  built = build('reports')
  for split, ex in built.examples.items():
    for report, summary in zip(ex['report'], ex['summary']):
      assert independent_summary(report) == summary, (split, report)
      words = set(report.split())
      teams_and_scorers = [w for w in summary.split() if w.isalpha() and w not in
                           {'beat', 'drew', 'with', 'goals', 'no'}]
      assert set(teams_and_scorers) <= words, (summary, report)
      scorers = summary.split(' : ')[1] if ' : ' in summary else ''
      for scorer in scorers.replace('.', ' ').replace(',', ' ').split():
        assert f'{scorer} scored for' in report, (scorer, report)


def test_draws_wins_and_goalless_games_occur_and_ood_reports_are_longer(build):
  ex = build('reports').examples
  summaries = list(ex['train']['summary'])
  assert any(' beat ' in s for s in summaries) and any(' drew ' in s for s in summaries)
  assert any(s.endswith('no goals .') for s in summaries)
  assert any('ruled out' in r or 'goals this season' in r for r in ex['train']['report'])
  length = lambda split: np.mean([len(r.split()) for r in ex[split]['report']])
  assert length('test_ood') > 1.5 * length('train')


def test_deterministic_and_splits_disjoint(build, canonical, tmp_path):
  built = build('reports')
  _, again = cache.load_builtin('reports', loading.builtin_config('reports', 'small'), str(tmp_path))
  assert canonical(again) == canonical(built.examples)
  reports = {split: set(ex['report']) for split, ex in built.examples.items()}
  splits = list(reports)
  for i, a in enumerate(splits):
    for b in splits[i + 1:]:
      assert not reports[a] & reports[b], (a, b)


def test_task_columns_decode_to_the_texts(build):
  built = build('reports')
  tok, cols = built.task.tokenizer, built.task.columns['train']
  inputs, targets = cols['inputs'].take(np.arange(3)), cols['targets'].take(np.arange(3))
  for i in range(3):
    assert tok.decode(targets[i]) == built.examples['train']['summary'][i]
    assert tok.decode(inputs[i]) == ' '.join(built.examples['train']['report'][i].split())

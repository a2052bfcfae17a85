"""Looking at attention: maps, alignments, statistics and tables, from arrays of weights (numpy or jax).

Nothing here takes a model: every function takes the weights an attention function returns with
return_weights=True or that `layers.capture_attention` reads from a model, so it works for every variant
(approximate ones reconstruct their implied weights) and every model. Plots are matplotlib Figures (no pyplot
state), saved as PNG when given a path.

  heatmaps     heatmap(weights [T, S]), attention_grid(layers x heads of one example)
  alignments   alignment(weights, source_tokens, target_tokens): translation / RNN alignments
  captioning   overlay_figure(image, alphas [T, R], words), upsample, peak_in_cell_score(alphas, token_cells, grid)
  asr          asr_figure(spectrogram, weights, token_ids, ctc_logits): attention vs CTC over the spectrogram
  bars         bar_chart(weights [S]): one query's weights
  statistics   entropy, normalised_entropy, mean_attention_distance, attention_rollout, head_statistics,
               table_rows / summary_row for result tables
  maps         flatten / group_layers: models' nested weight containers -> named arrays
  figures      figures_for_run(out_dir, weights, kind=...): what the runners call for --plot
  viewer       write_viewer(path, weights, kind=...): a self-contained interactive HTML page of one example
"""

from attention_research.analysis import (alignments, asr, bars, captioning, figures, heatmaps, maps, statistics,
                                         viewer)
from attention_research.analysis.alignments import alignment
from attention_research.analysis.asr import asr_figure
from attention_research.analysis.bars import bar_chart
from attention_research.analysis.captioning import overlay_figure, peak_in_cell_score, upsample
from attention_research.analysis.figures import KINDS, figures_for_run
from attention_research.analysis.heatmaps import attention_grid, heatmap
from attention_research.analysis.statistics import (attention_rollout, entropy, head_statistics,
                                                    mean_attention_distance, normalised_entropy, summary_row,
                                                    table_rows)
from attention_research.analysis.viewer import write_viewer

__all__ = ['alignments', 'asr', 'bars', 'captioning', 'figures', 'heatmaps', 'maps', 'statistics', 'viewer',
           'alignment', 'asr_figure', 'bar_chart', 'overlay_figure', 'peak_in_cell_score', 'upsample', 'KINDS',
           'figures_for_run', 'attention_grid', 'heatmap', 'attention_rollout', 'entropy', 'head_statistics',
           'mean_attention_distance', 'normalised_entropy', 'summary_row', 'table_rows', 'write_viewer']

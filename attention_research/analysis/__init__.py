"""Looking at attention: maps, alignments, statistics and tables, from arrays of weights (numpy or jax).

Nothing here takes a model: every function takes the weights an attention function returns with
return_weights=True or that `layers.capture_attention` reads from a model, so it works for every variant
(approximate ones reconstruct their implied weights) and every model. Plots are matplotlib Figures (no pyplot
state), saved as PNG when given a path.

  heatmaps     heatmap(weights [T, S]), attention_grid(layers x heads of one example)
  alignments   alignment(weights, source_tokens, target_tokens): translation / RNN alignments
  captioning   overlay_figure(image, alphas [T, R], words), upsample, peak_in_cell_score(alphas, token_cells, grid)
  asr          asr_figure(spectrogram, weights, token_ids, ctc_logits): attention vs CTC over the spectrogram
  rectified    rectified_figure(inputs, outputs): a spatial transformer's inputs above its outputs
  bars         bar_chart(weights [S]): one query's weights
  statistics   entropy, normalised_entropy, mean_attention_distance, attention_rollout, head_statistics,
               table_rows / summary_row for result tables
  maps         flatten / group_layers: models' nested weight containers -> named arrays
  figures      figures_for_run(out_dir, weights, kind=...): what the runners call for --plot
  viewer       write_viewer(path, weights, kind=...): a self-contained interactive HTML page of one example

Measurement (docs/interpretability.md):
  alignment_error  alignment_error_rate (Och and Ney 2003) of links read from cross-attention against gold;
                   for speech peak_frame_distance, frame_agreement and ctc_segments (CTC forced alignment)
  flow             attention_flow (Abnar and Zuidema 2020): max-flow through the layer graph, beside rollout
  relevancy        gradient-weighted relevancy (Chefer et al. 2021) for self- and cross-attention, gradient_x_input
  faithfulness     permuted / uniform weights, total_variation, output_change, rank_correlation (Kendall's tau)
  sinks            sink_statistics: mass on the first key and on the most attended key per head
The two modules that take a model and need JAX are imported by name, not here:
  probes           attention_gradients, input_gradients, run_with_attention (weights replaced), zero_heads
  ablation         head_importance, pruning_curve, counterfactual_change
"""

from attention_research.analysis import (alignments, asr, bars, captioning, figures, heatmaps, maps, statistics,
                                         viewer)
from attention_research.analysis import alignment_error, faithfulness, flow, relevancy, sinks
from attention_research.analysis.alignment_error import (alignment_error_rate, attention_links,
                                                         corpus_alignment_error_rate, ctc_segments, frame_agreement,
                                                         peak_frame_distance)
from attention_research.analysis.faithfulness import (output_change, permuted_weights, rank_correlation,
                                                      total_variation, uniform_weights)
from attention_research.analysis.flow import attention_flow
from attention_research.analysis.relevancy import (encoder_decoder_relevancy, gradient_x_input,
                                                   self_attention_relevancy)
from attention_research.analysis.sinks import sink_rows, sink_statistics
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
           'mean_attention_distance', 'normalised_entropy', 'summary_row', 'table_rows', 'alignment_error',
           'faithfulness', 'flow', 'relevancy', 'sinks', 'alignment_error_rate', 'attention_links',
           'corpus_alignment_error_rate', 'ctc_segments', 'frame_agreement', 'peak_frame_distance', 'output_change',
           'permuted_weights', 'rank_correlation', 'total_variation', 'uniform_weights', 'attention_flow',
           'encoder_decoder_relevancy', 'gradient_x_input', 'self_attention_relevancy', 'sink_rows',
           'sink_statistics', 'write_viewer']

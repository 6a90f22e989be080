"""Statistics for comparing options on the same items, as tidy tables: paired tests against the reference and the
floor (right/wrong and graded scores), agreement without labels, latency, cluster-robust intervals, prediction-
powered and stratified design-weighted estimates from a few labels, always-valid confidence sequences for runs and
labelling that stop when settled, successive halving, and power for planning. One :class:`Conclusion` enum and
one function finish every comparison table.

Every comparison is paired: the same items went through every arm. Errors and unparseable answers
count as wrong and are never dropped. Every table carries a ``statement`` column in plain words,
with the assumptions behind it.

>>> import pandas as pd
>>> df = pd.DataFrame({"option": ["api"] * 3 + ["local"] * 3, "item_id": [1, 2, 3] * 2,
...                    "correct": [True, True, False, True, False, False]})
>>> metric_table(df)["accuracy"].round(3).tolist()
[0.667, 0.333]
"""

from kit.stats._data import check_scores, pair_arms
from kit.stats.agreement import agreement, kappa_se, rater_agreement
from kit.stats.agreement_bar import agreement_bound, agreement_test, compare_agreement, items_needed_agreement
from kit.stats.bootstrap import MACRO_F1, MEAN, Metric, metric_from_function, paired_bootstrap, vectorised_metric
from kit.stats.clusters import (ClusteredMean, cluster_bootstrap, cluster_difference, cluster_interval, clustered_mean,
                                clusters_for, item_clusters)
from kit.stats.compare import compare_arms
from kit.stats.halving import Halving, successive_halving
from kit.stats.intervals import accuracy_ci, wilson_interval
from kit.stats.latency import latency_summary, latency_test
from kit.stats.conclusions import Conclusion, finish_comparison, holm
from kit.stats.paired import mcnemar, non_inferiority, tango_bound, tango_z
from kit.stats.paired_stats import ComparisonKind, PairedStatistic, PairedValues, register, registered, unregister
from kit.stats.pairs import beats_baseline, pairwise
from kit.stats.ppi import ppi_mean, ppi_mean_difference
from kit.stats.power import (labels_for_agreement, power_difference, power_noninferiority, sample_size_difference,
                             sample_size_noninferiority)
from kit.stats.scores import (compare_scores, items_needed_mean, mean_difference, sign_test, t_interval, t_test_items,
                              wilcoxon_signed_rank, win_tie_loss)
from kit.stats.tables import epoch_variation, errors_table, metric_table

__all__ = [
    "Halving", "successive_halving",
    "accuracy_ci", "agreement", "cluster_bootstrap", "cluster_difference", "cluster_interval", "ClusteredMean",
    "clustered_mean", "clusters_for", "item_clusters",
    "Conclusion", "finish_comparison", "ComparisonKind", "PairedStatistic", "PairedValues", "register",
    "registered", "unregister", "agreement_bound", "agreement_test", "beats_baseline", "check_scores",
    "compare_agreement", "compare_arms", "compare_scores", "epoch_variation", "errors_table", "holm",
    "items_needed_agreement", "items_needed_mean", "kappa_se", "labels_for_agreement", "latency_summary", "latency_test", "MACRO_F1",
    "mcnemar", "MEAN", "mean_difference", "Metric", "metric_from_function", "metric_table", "non_inferiority",
    "pair_arms", "paired_bootstrap", "pairwise", "power_difference", "power_noninferiority", "ppi_mean",
    "ppi_mean_difference", "rater_agreement",
    "sample_size_difference", "sample_size_noninferiority", "sign_test", "t_interval", "t_test_items",
    "tango_bound", "tango_z", "vectorised_metric", "wilcoxon_signed_rank", "wilson_interval", "win_tie_loss",
]

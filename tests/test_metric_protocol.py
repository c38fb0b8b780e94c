"""Both metrics satisfy the Metric protocol that the engine is written against, and the
protocol check rejects an object that lacks part of it."""

import numpy as np

from covertreex import CoverTree, Runtime, build_residual_backend
from covertreex.metrics.protocol import ALL_PAIRS, Metric


def test_both_fitted_metrics_satisfy_the_protocol():
    points = np.random.default_rng(0).standard_normal((300, 3))
    euclid = CoverTree(Runtime()).fit(points).metric
    residual = CoverTree(Runtime(metric="residual_correlation")).fit(
        build_residual_backend(points, inducing_count=30)).metric
    for metric in (euclid, residual):
        assert isinstance(metric, Metric), metric.name
        assert metric.kernels.tag == metric.name and metric.prune_slack >= 0.0
        rows, cols = np.arange(4), np.arange(10, 17)
        tile = metric.kernels.tile_kernel(metric.data, metric.data, rows, cols, ALL_PAIRS,
                                          np.full(4, np.inf), np.full(7, np.inf),
                                          metric.workspace(4), np.zeros(0))
        np.testing.assert_allclose(tile, metric.tile(metric.data, rows, cols), rtol=0, atol=1e-9)


def test_an_object_missing_part_of_the_protocol_is_not_a_metric():
    class NoSlack:
        name, n, data, kernels = "x", 0, None, None

        def workspace(self, block):
            return None

        def tile(self, qdata, rows, cols, counters=None):
            return None

    assert not isinstance(NoSlack(), Metric)
    NoSlack.prune_slack = 0.0
    assert isinstance(NoSlack(), Metric)

"""The data-collection benchmark's entry script: v1's tutorial shape, as cheap as the collection allows.

Each request collects its input rows (with v1's correlation columns) and its prediction (correlated).
"""

import json

from azureml.monitoring import ModelDataCollector


def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("bench_model", designation="inputs", feature_names=["a", "b", "c", "d"])
    prediction_dc = ModelDataCollector("bench_model", designation="predictions", feature_names=["y"])


def run(raw):
    data = json.loads(raw)["data"]
    result = [sum(row) for row in data]
    correlations = inputs_dc.collect(data)
    prediction_dc.collect(prediction_dc.add_correlations(result, correlations))
    return result

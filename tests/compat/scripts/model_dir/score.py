"""Reads its model from AZUREML_MODEL_DIR in init(), as v1 scripts do."""

import os

model = None


def init():
    global model
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    with open(os.path.join(model_dir, "model.txt"), encoding="utf-8") as f:
        model = f.read().strip()


def run(data):
    return {
        "model": model,
        "model_dir_tail": os.environ["AZUREML_MODEL_DIR"].split("/")[-3:],
        "cwd_has_score_py": os.path.exists("score.py"),
    }

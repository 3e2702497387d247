"""modelhost shim of ``azureml.train.automl``: AutoML scoring files import it for its side effects only.

Unpickling a real AutoML model needs the real AutoML runtime in the model's environment.
"""

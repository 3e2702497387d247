"""modelhost shim of ``azureml.contrib.services``; ``aml_request``/``aml_response`` are the server's."""

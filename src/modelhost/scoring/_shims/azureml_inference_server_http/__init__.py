"""modelhost shim of ``azureml_inference_server_http``; its ``api.aml_request``/``api.aml_response`` are
the server's modules."""

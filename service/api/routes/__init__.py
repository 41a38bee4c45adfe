"""One module per concern: parse, health/ready, the model card, metrics, the page and the docs."""

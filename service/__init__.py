"""HTTP service for the ON-LSTM parser: FastAPI app, micro-batcher, settings and the web page."""

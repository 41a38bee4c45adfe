"""The network: the ON-LSTM cell, the language model with its fused recurrence and C kernels, the
loss, and the step-by-step oracle the fast paths are tested against."""

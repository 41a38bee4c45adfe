"""Trees: syntactic distances to binary spans (the decoders), spans to ``nltk.Tree`` and PTB strings, and
punctuation put back into a tree built over the words."""

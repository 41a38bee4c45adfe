"""The default limits on one request, shared by the service (its settings' defaults), ``onlstm
parse`` (``--max-tokens``) and the client (what it splits a large call into before it has read
the service's published limits)."""

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_SENTENCES", "DEFAULT_MAX_TOKENS", "DEFAULT_MAX_TOKEN_CHARS"]

DEFAULT_MAX_TOKENS = 250  # tokens in one sentence: a longer "sentence" is nearly always a paragraph read as one
DEFAULT_MAX_SENTENCES = 256  # sentences in one request
DEFAULT_MAX_BODY_BYTES = 1_000_000  # bytes of one request body
# characters in one token: a URL is one token, and real ones pass 100 characters (which refused the
# whole request they were in); the body limit bounds what a token can cost
DEFAULT_MAX_TOKEN_CHARS = 1_000

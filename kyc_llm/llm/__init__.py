"""The LLM half of the service: providers, challenge wording and movement judgment.

Nothing here builds a client at import time: ``providers.make_provider(settings)`` returns a
provider whose SDK client is created on first use.
"""

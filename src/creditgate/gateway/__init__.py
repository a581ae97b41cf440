"""The LLM gateway: OpenAI- and Anthropic-compatible routes that hold credit before the call.

A request to `/gateway/openai/v1/…` or `/gateway/anthropic/v1/…` is authorized from its own
content (its input estimated, its output at its cap), forwarded upstream with the tenant's
provider key, passed back as it comes (streams included) and settled from the usage the
answer reports. A declined request never reaches the provider. See docs/gateway.md.
"""

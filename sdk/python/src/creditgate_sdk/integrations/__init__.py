"""Plugins that gate another library's LLM calls with creditgate; each is imported on its own
(`creditgate_sdk.integrations.litellm`), so the SDK never loads a library the app did not ask
for."""

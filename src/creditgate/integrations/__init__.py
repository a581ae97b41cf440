"""Plugins for the libraries an AI product calls its models through. They live in the SDK
(`creditgate_sdk.integrations`, which an app installs without the server) and are named here
too; each is imported only when asked for by name."""

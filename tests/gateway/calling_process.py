"""One OS process calling the served gateway with the openai client: imports nothing but
openai, so that the fork server the test's processes start from (`tests.processes`) has
little to load before them."""

from __future__ import annotations

import os
from typing import Any

MESSAGES = [{"role": "user", "content": "Count to three, please."}]
MAX_TOKENS = 25


def call(base_url: str, races: list[tuple[str, int]], stream: bool, start: Any, out: Any) -> None:
    """For each race (a gateway key, a number of calls): once every process is ready, that
    many chat completions in a row with the key; puts ("ok", race, approved, declined) on
    `out` per race, or ("error", what, pid). A 402 is a decline; anything else an error."""
    try:
        import openai

        for race, (key, calls) in enumerate(races):
            client = openai.OpenAI(
                base_url=f"{base_url}/gateway/openai/v1", api_key=key, max_retries=0, timeout=60
            )
            approved = declined = 0
            start.wait(timeout=120)
            for _ in range(calls):
                try:
                    if stream:
                        chunks = client.chat.completions.create(
                            model="gpt-test",
                            messages=MESSAGES,
                            max_tokens=MAX_TOKENS,
                            stream=True,
                        )
                        text = "".join(
                            c.choices[0].delta.content or "" for c in chunks if c.choices
                        )
                        assert text == "Hello, world!", text
                    else:
                        client.chat.completions.create(
                            model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS
                        )
                    approved += 1
                except openai.APIStatusError as exc:
                    if exc.status_code != 402:
                        raise
                    declined += 1
            out.put(("ok", race, approved, declined))
    except BaseException as exc:
        out.put(("error", repr(exc), os.getpid()))

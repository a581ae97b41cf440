/**
 * A local stand-in for the OpenAI and Anthropic APIs: answers recorded in their wire format
 * (JSON, or server-sent events when the request asks for a stream), and counts the calls, so a
 * test can tell that a declined call never reached the provider.
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export const CHAT_USAGE = {
  prompt_tokens: 1_200,
  completion_tokens: 300,
  total_tokens: 1_500,
  prompt_tokens_details: { cached_tokens: 1_000, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
};
export const ANTHROPIC_USAGE = {
  input_tokens: 50,
  cache_read_input_tokens: 2_000,
  cache_creation_input_tokens: 300,
  output_tokens: 200,
};
export const RESPONSES_USAGE = {
  input_tokens: 900,
  input_tokens_details: { cached_tokens: 512 },
  output_tokens: 250,
  output_tokens_details: { reasoning_tokens: 100 },
  total_tokens: 1_150,
};

export interface Provider {
  baseUrl: string;
  calls: string[];
  /** Answer the next call with this HTTP status. */
  failNext(status: number): void;
  close(): Promise<void>;
}

function sse(res: ServerResponse, events: { event?: string; data: unknown }[], done = false): void {
  res.writeHead(200, { "Content-Type": "text/event-stream" });
  for (const e of events) {
    if (e.event) res.write(`event: ${e.event}\n`);
    res.write(`data: ${JSON.stringify(e.data)}\n\n`);
  }
  if (done) res.write("data: [DONE]\n\n");
  res.end();
}

function chat(res: ServerResponse, body: { model: string; stream?: boolean; stream_options?: { include_usage?: boolean } }): void {
  const base = { id: "chatcmpl-1", created: 1_767_268_800, model: body.model, system_fingerprint: null };
  if (!body.stream) {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(
      JSON.stringify({
        ...base,
        object: "chat.completion",
        choices: [{ index: 0, finish_reason: "stop", logprobs: null, message: { role: "assistant", content: "Hello!", refusal: null } }],
        usage: CHAT_USAGE,
      }),
    );
    return;
  }
  const chunk = (delta: unknown, finish: string | null) => ({
    ...base,
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    usage: null,
  });
  const events = [
    { data: chunk({ role: "assistant", content: "" }, null) },
    { data: chunk({ content: "Hel" }, null) },
    { data: chunk({ content: "lo!" }, null) },
    { data: chunk({}, "stop") },
  ];
  if (body.stream_options?.include_usage) {
    events.push({ data: { ...base, object: "chat.completion.chunk", choices: [], usage: CHAT_USAGE } as never });
  }
  sse(res, events, true);
}

function messages(res: ServerResponse, body: { model: string; stream?: boolean }): void {
  const message = {
    id: "msg_01",
    type: "message",
    role: "assistant",
    model: body.model,
    content: [{ type: "text", text: "Hello!" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: ANTHROPIC_USAGE,
  };
  if (!body.stream) {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(message));
    return;
  }
  const start = {
    ...message,
    content: [],
    stop_reason: null,
    usage: { ...ANTHROPIC_USAGE, output_tokens: 1 },
  };
  sse(res, [
    { event: "message_start", data: { type: "message_start", message: start } },
    { event: "content_block_start", data: { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } } },
    { event: "content_block_delta", data: { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hello!" } } },
    { event: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
    {
      event: "message_delta",
      data: { type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: ANTHROPIC_USAGE.output_tokens } },
    },
    { event: "message_stop", data: { type: "message_stop" } },
  ]);
}

function responses(res: ServerResponse, body: { model: string }): void {
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(
    JSON.stringify({
      id: "resp_1",
      object: "response",
      created_at: 1_767_268_800,
      model: body.model,
      status: "completed",
      output: [],
      usage: RESPONSES_USAGE,
    }),
  );
}

export async function startProvider(): Promise<Provider> {
  const calls: string[] = [];
  let fail: number | null = null;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      calls.push(req.url ?? "");
      if (fail !== null) {
        const status = fail;
        fail = null;
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { type: "invalid_request_error", message: "refused by the stand-in" } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { model: string };
      if (req.url?.endsWith("/chat/completions")) chat(res, body);
      else if (req.url?.endsWith("/messages")) messages(res, body);
      else if (req.url?.endsWith("/responses")) responses(res, body);
      else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("no address");
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    calls,
    failNext(status) {
      fail = status;
    },
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

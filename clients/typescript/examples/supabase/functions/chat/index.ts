// A Supabase edge function (Deno) that streams an OpenAI answer and bills it to the customer:
// credit is held first, and the stream is charged once, when it ends, from its usage chunk.
// Secrets: CREDITGATE_BASE_URL, CREDITGATE_API_KEY, OPENAI_API_KEY (supabase secrets set …).
import { Client, Declined } from "npm:@creditgate/client";
import OpenAI from "npm:openai";

const cg = new Client({
  baseUrl: Deno.env.get("CREDITGATE_BASE_URL"),
  apiKey: Deno.env.get("CREDITGATE_API_KEY"),
});
const openai = new OpenAI({ apiKey: Deno.env.get("OPENAI_API_KEY") });

Deno.serve(async (request: Request): Promise<Response> => {
  const { customer, prompt } = (await request.json()) as { customer: string; prompt: string };
  let stream;
  try {
    stream = await cg.guard(
      { customer, action: "chat.completion", model: "gpt-4.1", inputTokens: prompt.length, maxTokens: 800 },
      () =>
        openai.chat.completions.create({
          model: "gpt-4.1",
          messages: [{ role: "user", content: prompt }],
          max_tokens: 800,
          stream: true,
          stream_options: { include_usage: true }, // the usage chunk the charge is priced from
        }),
    );
  } catch (error) {
    if (error instanceof Declined) return Response.json({ error: "out of credits" }, { status: 402 });
    throw error;
  }
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      for await (const chunk of stream) {
        controller.enqueue(encoder.encode(chunk.choices[0]?.delta.content ?? ""));
      }
      controller.close(); // the stream has ended: its usage is charged by now
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/plain; charset=utf-8" } });
});

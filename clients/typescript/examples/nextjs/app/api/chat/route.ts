// A Next.js route handler (app/api/chat/route.ts) that bills each chat call to the signed-in
// customer: credit is held before OpenAI is called, the completion is charged by its usage.
// Environment: CREDITGATE_BASE_URL, CREDITGATE_API_KEY, OPENAI_API_KEY.
import { Client, Declined } from "@creditgate/client";
import OpenAI from "openai";

const cg = new Client(); // base URL and API key from the environment
const openai = new OpenAI();

export async function POST(request: Request): Promise<Response> {
  const { customer, prompt } = (await request.json()) as { customer: string; prompt: string };
  try {
    const completion = await cg.guard(
      { customer, action: "chat.completion", model: "gpt-4.1", inputTokens: prompt.length, maxTokens: 800 },
      () =>
        openai.chat.completions.create({
          model: "gpt-4.1",
          messages: [{ role: "user", content: prompt }],
          max_tokens: 800,
        }),
    );
    return Response.json({ answer: completion.choices[0]?.message.content ?? "" });
  } catch (error) {
    if (error instanceof Declined) {
      return Response.json(
        { error: "out of credits", available: error.available.toString() },
        { status: 402 },
      );
    }
    throw error;
  }
}

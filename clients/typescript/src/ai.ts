/**
 * Vercel AI SDK middleware: every call of a wrapped language model is held before the
 * provider is called and settled from the usage the model reports.
 *
 *     const model = wrapLanguageModel({
 *       model: openai("gpt-4.1"),
 *       middleware: creditgateMiddleware({ client: cg, customer: user.id, action: "chat.completion" }),
 *     });
 *
 * `doGenerate` settles from the result's `usage`; `doStream` from the stream's `finish` part,
 * once, when the stream has passed it on. A decline throws `Declined` before the provider is
 * called; a failing call (or stream) voids the hold. The hold is priced by the server's rate
 * card for `action`, with the model's id as the `model` dimension, for an estimate of the
 * prompt's tokens (`estimateInputTokens`, by default a quarter of its characters) and the
 * call's `maxOutputTokens` (or `maxTokens`); the settle is priced by the same card version
 * for the usage reported.
 *
 * The types below are the parts of the AI SDK's `LanguageModelV3Middleware` this uses,
 * written out so that the package needs nothing of the AI SDK at run time.
 */

import type { Client } from "./client.js";
import { Guard, type GuardOptions } from "./guard.js";
import { aiSdkUsage } from "./usage.js";

interface ModelLike {
  readonly modelId: string;
  readonly provider: string;
}

interface CallOptionsLike {
  prompt: unknown;
  maxOutputTokens?: number | undefined;
}

interface GenerateResultLike {
  usage: unknown;
}

interface StreamResultLike {
  stream: ReadableStream<unknown>;
}

export interface CreditgateMiddleware {
  readonly specificationVersion: "v3";
  wrapGenerate<R extends GenerateResultLike>(options: {
    doGenerate: () => PromiseLike<R>;
    params: CallOptionsLike;
    model: ModelLike;
  }): Promise<R>;
  wrapStream<R extends StreamResultLike>(options: {
    doStream: () => PromiseLike<R>;
    params: CallOptionsLike;
    model: ModelLike;
  }): Promise<R>;
}

type PerCall<T> = T | ((call: { params: CallOptionsLike; model: ModelLike }) => T);

export interface CreditgateMiddlewareOptions
  extends Omit<GuardOptions, "customer" | "action" | "model" | "inputTokens" | "maxTokens"> {
  client: Client;
  /** The customer billed: an id, or a function of the call. */
  customer: PerCall<string>;
  /** The action the rate card prices, e.g. "chat.completion". */
  action: string;
  /** The `model` dimension (default: the model's id; null for none). */
  model?: PerCall<string | null>;
  /** Input tokens the hold is priced for (default: a quarter of the prompt's characters). */
  estimateInputTokens?: (params: CallOptionsLike) => number;
  /** Output tokens the hold is priced for when the call sets no `maxOutputTokens`. */
  defaultMaxOutputTokens?: number;
}

function resolve<T>(value: PerCall<T>, call: { params: CallOptionsLike; model: ModelLike }): T {
  return typeof value === "function"
    ? (value as (call: { params: CallOptionsLike; model: ModelLike }) => T)(call)
    : value;
}

/** A rough count of a prompt's tokens for the hold: a quarter of its text's characters. */
export function estimatePromptTokens(prompt: unknown): number {
  let characters = 0;
  const visit = (value: unknown): void => {
    if (typeof value === "string") characters += value.length;
    else if (Array.isArray(value)) value.forEach(visit);
    else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) {
        if (key === "text" || key === "content" || key === "input" || key === "output") visit(item);
        else if (Array.isArray(item) || (item !== null && typeof item === "object")) visit(item);
      }
    }
  };
  visit(prompt);
  return Math.ceil(characters / 4);
}

/** Middleware for the AI SDK's `wrapLanguageModel` that holds, settles and voids creditgate
 * credit around every call of the model. */
export function creditgateMiddleware(options: CreditgateMiddlewareOptions): CreditgateMiddleware {
  const {
    client,
    customer,
    action,
    model,
    estimateInputTokens,
    defaultMaxOutputTokens,
    ...rest
  } = options;

  const open = async (params: CallOptionsLike, wrapped: ModelLike): Promise<Guard> => {
    const call = { params, model: wrapped };
    const modelName = model === undefined ? wrapped.modelId : resolve(model, call);
    const maxTokens =
      params.maxOutputTokens ??
      (params as { maxTokens?: number }).maxTokens ??
      defaultMaxOutputTokens;
    const guardOptions: GuardOptions = {
      ...rest,
      customer: resolve(customer, call),
      action,
      inputTokens: (estimateInputTokens ?? ((p) => estimatePromptTokens(p.prompt)))(params),
    };
    if (modelName) guardOptions.model = modelName;
    if (maxTokens !== undefined) guardOptions.maxTokens = maxTokens;
    const guard = new Guard(client, guardOptions);
    await guard.open(); // a decline throws Declined here, before the provider is called
    return guard;
  };

  return {
    specificationVersion: "v3",

    async wrapGenerate({ doGenerate, params, model: wrapped }) {
      const guard = await open(params, wrapped);
      let result;
      try {
        result = await doGenerate();
      } catch (error) {
        await guard.abandon(error);
        throw error;
      }
      try {
        await guard.settle(aiSdkUsage(result.usage, guard.options.model ?? null));
      } catch (error) {
        await guard.abandon(error);
        throw error;
      }
      return result;
    },

    async wrapStream({ doStream, params, model: wrapped }) {
      const guard = await open(params, wrapped);
      let result;
      try {
        result = await doStream();
      } catch (error) {
        await guard.abandon(error);
        throw error;
      }
      const modelName = guard.options.model ?? null;
      const source = result.stream.getReader();
      let finished = false;
      // Once: settle from the usage reported, or void when the stream reported none.
      const finish = async (): Promise<void> => {
        if (finished) return;
        finished = true;
        try {
          if (guard.observedUsage) await guard.settle();
          else await guard.close();
        } catch (error) {
          await guard.abandon(error); // a settle that failed leaves no hold behind
          throw error;
        }
      };
      const fail = async (error: unknown): Promise<void> => {
        finished = true;
        await guard.abandon(error);
      };
      const stream = new ReadableStream<unknown>({
        async pull(controller) {
          let step: ReadableStreamReadResult<unknown>;
          try {
            step = await source.read();
          } catch (error) {
            await fail(error);
            controller.error(error);
            return;
          }
          if (step.done) {
            try {
              await finish();
              controller.close();
            } catch (error) {
              controller.error(error);
            }
            return;
          }
          const part = step.value as { type?: unknown; usage?: unknown } | null;
          if (part !== null && typeof part === "object" && part.type === "finish") {
            try {
              guard.observe(aiSdkUsage(part.usage, modelName));
            } catch (error) {
              await fail(error);
              await source.cancel(error).catch(() => undefined);
              controller.error(error);
              return;
            }
          }
          controller.enqueue(step.value);
        },
        async cancel(reason) {
          // the reader left before the end: bill what was reported, or void
          await source.cancel(reason).catch(() => undefined);
          await finish();
        },
      });
      return { ...result, stream };
    },
  };
}

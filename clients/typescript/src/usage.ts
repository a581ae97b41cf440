/**
 * Token usage read off LLM responses (OpenAI, Anthropic, their streams, the Vercel AI SDK)
 * into one shape, by the same rules as creditgate's Python SDK.
 *
 * `Usage` counts tokens disjointly, as the server's rate cards and vendor costs do: no token
 * is counted twice, and each quantity is priced at its own rate.
 *
 * - `input_tokens`: input tokens neither read from nor written to the prompt cache;
 * - `cached_tokens`: input tokens read from the prompt cache;
 * - `cache_write_tokens`: input tokens written to the prompt cache;
 * - `output_tokens`: every output token, reasoning included;
 * - `reasoning_tokens`: the part of `output_tokens` spent reasoning (shown, not priced apart).
 *
 * OpenAI chat completions count cache reads and writes inside `prompt_tokens`:
 * `input_tokens` = `prompt_tokens` - `prompt_tokens_details.cached_tokens` -
 * `prompt_tokens_details.cache_write_tokens`; `output_tokens` = `completion_tokens`, with
 * `completion_tokens_details.reasoning_tokens`. The Responses API the same by other names
 * (`input_tokens`, `input_tokens_details`, `output_tokens`, `output_tokens_details`).
 * Anthropic messages report the input counts apart, so they map one to one:
 * `input_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`, `output_tokens`
 * (`output_tokens_details.thinking_tokens` inside it).
 *
 * A missing or null count is zero. A count that is not a whole number of zero or more, cache
 * counts above OpenAI's prompt count, or reasoning above output cannot come from a real call:
 * they throw `ImpossibleUsage` (with a stable `code` and the vendor's `field`), never a clamp.
 * The test vectors are shared with the Python SDK: tests/fixtures/usage_vectors.json.
 */

export const TOKEN_FIELDS = [
  "input_tokens",
  "output_tokens",
  "cached_tokens",
  "cache_write_tokens",
  "reasoning_tokens",
] as const;
export type TokenField = (typeof TOKEN_FIELDS)[number];

/** The quantities a rate card prices tokens by; reasoning is inside `output_tokens`. */
export const PRICED_TOKENS = [
  "input_tokens",
  "cached_tokens",
  "cache_write_tokens",
  "output_tokens",
] as const;

/** Usage counts no real call produces; `code` names the fault, `field` where it is.
 *
 * Codes: `not_a_count` (not a whole number), `negative_count`, `cache_exceeds_input` (an
 * OpenAI usage whose cache reads and writes exceed its prompt tokens),
 * `reasoning_exceeds_output`. */
export class ImpossibleUsage extends RangeError {
  constructor(
    readonly code: string,
    readonly field: string,
    detail: string,
    readonly source: string | null = null,
  ) {
    super(`${source ? `${source} usage ${field}` : field}: ${detail}`);
    this.name = "ImpossibleUsage";
  }
}

/** The object carries no usage: not a response, or a stream without its usage chunk. */
export class UsageNotFound extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "UsageNotFound";
  }
}

function count(value: unknown, field: string, source: string | null): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === "bigint") value = Number(value);
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new ImpossibleUsage(
      "not_a_count",
      field,
      `must be a whole number, got ${JSON.stringify(value) ?? String(value)}`,
      source,
    );
  }
  if (value < 0) {
    throw new ImpossibleUsage("negative_count", field, `must be zero or more, got ${value}`, source);
  }
  return value;
}

function checkReasoning(reasoning: number, output: number, field: string, source: string | null) {
  if (reasoning > output) {
    throw new ImpossibleUsage(
      "reasoning_exceeds_output",
      field,
      `${reasoning} reasoning tokens are more than the ${output} output tokens they are part of`,
      source,
    );
  }
}

export interface UsageCounts {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cached_tokens?: number | null;
  cache_write_tokens?: number | null;
  reasoning_tokens?: number | null;
}

/** Token counts in creditgate's disjoint terms, and other quantities by name. */
export class Usage {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cached_tokens: number;
  readonly cache_write_tokens: number;
  readonly reasoning_tokens: number;
  readonly model: string | null;
  /** Other quantities an action is priced by (images, characters, seconds), by name. */
  readonly quantities: Readonly<Record<string, number>>;

  /** Counts given directly are disjoint already; impossible ones throw `ImpossibleUsage`. */
  constructor(
    counts: UsageCounts = {},
    options: { model?: string | null; quantities?: Record<string, number | bigint> } = {},
  ) {
    this.input_tokens = count(counts.input_tokens, "input_tokens", null);
    this.output_tokens = count(counts.output_tokens, "output_tokens", null);
    this.cached_tokens = count(counts.cached_tokens, "cached_tokens", null);
    this.cache_write_tokens = count(counts.cache_write_tokens, "cache_write_tokens", null);
    this.reasoning_tokens = count(counts.reasoning_tokens, "reasoning_tokens", null);
    checkReasoning(this.reasoning_tokens, this.output_tokens, "reasoning_tokens", null);
    const quantities: Record<string, number> = {};
    for (const [name, value] of Object.entries(options.quantities ?? {})) {
      quantities[name] = count(value, `quantities.${name}`, null);
    }
    this.quantities = Object.freeze(quantities);
    this.model = options.model ?? null;
    Object.freeze(this);
  }

  /** Every input token: uncached, read from the cache and written to it. */
  get prompt_tokens(): number {
    return this.input_tokens + this.cached_tokens + this.cache_write_tokens;
  }

  get total_tokens(): number {
    return this.prompt_tokens + this.output_tokens;
  }

  /** Usage of two calls together. */
  plus(other: Usage): Usage {
    const merged: Record<string, number> = { ...this.quantities };
    for (const [name, value] of Object.entries(other.quantities)) {
      merged[name] = (merged[name] ?? 0) + value;
    }
    const counts: UsageCounts = {};
    for (const name of TOKEN_FIELDS) counts[name] = this[name] + other[name];
    return new Usage(counts, { model: this.model ?? other.model, quantities: merged });
  }

  with(options: { model?: string | null }): Usage {
    return new Usage(this.counts(), { model: options.model ?? null, quantities: this.quantities });
  }

  /** The five token counts. */
  counts(): Record<TokenField, number> {
    return {
      input_tokens: this.input_tokens,
      output_tokens: this.output_tokens,
      cached_tokens: this.cached_tokens,
      cache_write_tokens: this.cache_write_tokens,
      reasoning_tokens: this.reasoning_tokens,
    };
  }

  /** The counts as the server's rate cards price them, for authorize and settle: the token
   * counts as they are, without reasoning tokens (inside `output_tokens`), and zero counts
   * left out (a missing quantity is zero). */
  asQuantities(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of PRICED_TOKENS) if (this[name]) out[name] = this[name];
    for (const [name, value] of Object.entries(this.quantities)) {
      if (value) out[name] = value;
      else delete out[name];
    }
    return out;
  }

  /** The counts that are not zero (and the model), e.g. for a charge's metadata. */
  toJSON(): Record<string, number | string> {
    const out: Record<string, number | string> = {};
    for (const name of TOKEN_FIELDS) if (this[name]) out[name] = this[name];
    for (const [name, value] of Object.entries(this.quantities)) if (value) out[name] = value;
    if (this.model) out.model = this.model;
    return out;
  }
}

type Bag = Record<string, unknown>;

function get(obj: unknown, name: string): unknown {
  if (obj === null || obj === undefined || typeof obj !== "object") return undefined;
  return (obj as Bag)[name];
}

function has(obj: unknown, name: string): boolean {
  return obj !== null && typeof obj === "object" && name in obj;
}

function modelOf(obj: unknown): string | null {
  const value = get(obj, "model");
  return typeof value === "string" && value ? value : null;
}

function openai(
  raw: unknown,
  source: string,
  names: readonly [string, string, string, string],
  model: string | null,
): Usage {
  const [inputName, outputName, inputDetails, outputDetails] = names;
  const detailsIn = get(raw, inputDetails);
  const detailsOut = get(raw, outputDetails);
  const prompt = count(get(raw, inputName), inputName, source);
  const cached = count(get(detailsIn, "cached_tokens"), `${inputDetails}.cached_tokens`, source);
  const writtenField = `${inputDetails}.cache_write_tokens`;
  const written = count(get(detailsIn, "cache_write_tokens"), writtenField, source);
  const output = count(get(raw, outputName), outputName, source);
  const reasoningField = `${outputDetails}.reasoning_tokens`;
  const reasoning = count(get(detailsOut, "reasoning_tokens"), reasoningField, source);
  if (cached + written > prompt) {
    throw new ImpossibleUsage(
      "cache_exceeds_input",
      `${inputDetails}.cached_tokens`,
      `${cached} cached and ${written} cache-write tokens are more than the ${prompt}` +
        ` ${inputName} they are part of`,
      source,
    );
  }
  checkReasoning(reasoning, output, reasoningField, source);
  return new Usage(
    {
      input_tokens: prompt - cached - written,
      cached_tokens: cached,
      cache_write_tokens: written,
      output_tokens: output,
      reasoning_tokens: reasoning,
    },
    { model },
  );
}

/** An OpenAI chat completion's `usage` in creditgate's counts. */
export function openaiChatUsage(raw: unknown, model: string | null = null): Usage {
  const names = [
    "prompt_tokens",
    "completion_tokens",
    "prompt_tokens_details",
    "completion_tokens_details",
  ] as const;
  return openai(raw, "openai chat.completions", names, model);
}

/** An OpenAI Responses API `usage` in creditgate's counts. */
export function openaiResponsesUsage(raw: unknown, model: string | null = null): Usage {
  const names = [
    "input_tokens",
    "output_tokens",
    "input_tokens_details",
    "output_tokens_details",
  ] as const;
  return openai(raw, "openai responses", names, model);
}

/** An Anthropic message's `usage`: its counts are disjoint already. */
export function anthropicUsage(raw: unknown, model: string | null = null): Usage {
  const source = "anthropic messages";
  const output = count(get(raw, "output_tokens"), "output_tokens", source);
  const reasoningField = "output_tokens_details.thinking_tokens";
  const reasoning = count(
    get(get(raw, "output_tokens_details"), "thinking_tokens"),
    reasoningField,
    source,
  );
  checkReasoning(reasoning, output, reasoningField, source);
  return new Usage(
    {
      input_tokens: count(get(raw, "input_tokens"), "input_tokens", source),
      cached_tokens: count(get(raw, "cache_read_input_tokens"), "cache_read_input_tokens", source),
      cache_write_tokens: count(
        get(raw, "cache_creation_input_tokens"),
        "cache_creation_input_tokens",
        source,
      ),
      output_tokens: output,
      reasoning_tokens: reasoning,
    },
    { model },
  );
}

/**
 * A vendor's usage object to `Usage`, by the vendor's mapping. The vendor is told by the
 * fields it reports: `prompt_tokens` is OpenAI's chat completions, `input_tokens_details`
 * OpenAI's Responses API; anything else with `input_tokens` or `output_tokens` is read as
 * Anthropic's disjoint counts (which is also how plain counts without cache details read).
 */
export function usageOf(raw: unknown, model: string | null = null): Usage {
  if (raw instanceof Usage) return raw;
  if (has(raw, "prompt_tokens")) return openaiChatUsage(raw, model);
  if (has(raw, "input_tokens_details")) return openaiResponsesUsage(raw, model);
  if (has(raw, "input_tokens") || has(raw, "output_tokens")) return anthropicUsage(raw, model);
  throw new UsageNotFound(`${describe(raw)} is not a usage object`);
}

function describe(item: unknown): string {
  if (item === null || typeof item !== "object") return String(item);
  return item.constructor?.name ?? "Object";
}

// Anthropic stream events that carry a running total of the message being streamed.
const ANTHROPIC_RUNNING = new Set(["message_delta", "message_stop"]);
// OpenAI Responses stream events that carry the finished response.
const RESPONSE_DONE = new Set(["response.completed", "response.incomplete", "response.failed"]);

/** Two running totals of one streamed message: each count as far as either has seen. */
function latest(current: Usage, snapshot: Usage): Usage {
  const counts: UsageCounts = {};
  for (const name of TOKEN_FIELDS) counts[name] = Math.max(current[name], snapshot[name]);
  return new Usage(counts, {
    model: current.model ?? snapshot.model,
    quantities: current.quantities,
  });
}

/**
 * Adds up the usage of responses and stream events, as the guard sees them.
 *
 * A complete answer (a chat completion, a response, a message, the final chunk of an OpenAI
 * stream, a `response.completed` event) adds its usage. An Anthropic stream reports running
 * totals: `message_start` opens a message, `message_delta` (and the stream helper's
 * `message_stop`) move its counts forward. Events without usage are ignored.
 */
export class UsageMeter {
  private done = new Usage();
  private streaming: Usage | null = null;
  seen = false;

  get total(): Usage {
    return this.streaming === null ? this.done : this.done.plus(this.streaming);
  }

  observe(item: unknown): void {
    if (item instanceof Usage) {
      this.add(item);
      return;
    }
    const kind = get(item, "type");
    if (kind === "message_start") {
      const message = get(item, "message");
      this.closeStream();
      this.streaming = new Usage({}, { model: modelOf(message) });
      const usage = get(message, "usage");
      if (usage !== null && usage !== undefined) {
        this.streaming = latest(this.streaming, anthropicUsage(usage));
      }
      this.seen = true;
      return;
    }
    if (typeof kind === "string" && ANTHROPIC_RUNNING.has(kind)) {
      const message = get(item, "message");
      const usage = get(item, "usage") ?? get(message, "usage");
      if (usage !== null && usage !== undefined) {
        const snapshot = anthropicUsage(usage, modelOf(message));
        this.streaming = latest(this.streaming ?? new Usage(), snapshot);
        this.seen = true;
      }
      return;
    }
    if (typeof kind === "string" && RESPONSE_DONE.has(kind)) {
      this.observe(get(item, "response"));
      return;
    }
    const usage = get(item, "usage");
    if (usage !== null && usage !== undefined) {
      this.add(usageOf(usage, modelOf(item)));
      return;
    }
    if (item !== null && item !== undefined && !has(item, "usage") && typeof kind !== "string") {
      // a bare usage object, e.g. `response.usage`
      try {
        this.add(usageOf(item));
      } catch (error) {
        if (!(error instanceof UsageNotFound)) throw error;
      }
    }
  }

  private add(usage: Usage): void {
    this.done = this.done.plus(usage);
    this.seen = true;
  }

  private closeStream(): void {
    if (this.streaming !== null) {
      this.done = this.done.plus(this.streaming);
      this.streaming = null;
    }
  }
}

/** The usage of one or more responses, or of all the events of a stream, added up. */
export function usageFrom(...items: unknown[]): Usage {
  const meter = new UsageMeter();
  for (const item of items) meter.observe(item);
  if (!meter.seen) {
    const names = items.map(describe).join(", ") || "nothing";
    throw new UsageNotFound(
      `no usage found in ${names}: pass a response object, the final usage chunk of a stream` +
        " (OpenAI: stream_options: { include_usage: true }), or explicit quantities",
    );
  }
  return meter.total;
}

/**
 * The usage a Vercel AI SDK language model reports (`LanguageModelV3Usage`, or the flat
 * `LanguageModelV2Usage`), in creditgate's counts. Its input total includes cache reads and
 * writes, as OpenAI's does; `noCache`, when reported, is the uncached part.
 */
export function aiSdkUsage(raw: unknown, model: string | null = null): Usage {
  const source = "ai-sdk";
  const input = get(raw, "inputTokens");
  const output = get(raw, "outputTokens");
  if (input !== null && typeof input === "object") {
    const total = count(get(input, "total"), "inputTokens.total", source);
    const cached = count(get(input, "cacheRead"), "inputTokens.cacheRead", source);
    const written = count(get(input, "cacheWrite"), "inputTokens.cacheWrite", source);
    const noCache = get(input, "noCache");
    let uncached: number;
    if (noCache !== null && noCache !== undefined) {
      uncached = count(noCache, "inputTokens.noCache", source);
    } else {
      if (cached + written > total) {
        throw new ImpossibleUsage(
          "cache_exceeds_input",
          "inputTokens.cacheRead",
          `${cached} cached and ${written} cache-write tokens are more than the ${total}` +
            " input tokens they are part of",
          source,
        );
      }
      uncached = total - cached - written;
    }
    const outputTotal = count(get(output, "total"), "outputTokens.total", source);
    const reasoning = count(get(output, "reasoning"), "outputTokens.reasoning", source);
    checkReasoning(reasoning, outputTotal, "outputTokens.reasoning", source);
    return new Usage(
      {
        input_tokens: uncached,
        cached_tokens: cached,
        cache_write_tokens: written,
        output_tokens: outputTotal,
        reasoning_tokens: reasoning,
      },
      { model },
    );
  }
  // LanguageModelV2Usage: flat counts, cached input inside inputTokens
  const total = count(input, "inputTokens", source);
  const cached = count(get(raw, "cachedInputTokens"), "cachedInputTokens", source);
  if (cached > total) {
    throw new ImpossibleUsage(
      "cache_exceeds_input",
      "cachedInputTokens",
      `${cached} cached tokens are more than the ${total} input tokens they are part of`,
      source,
    );
  }
  const outputTotal = count(output, "outputTokens", source);
  const reasoning = count(get(raw, "reasoningTokens"), "reasoningTokens", source);
  checkReasoning(reasoning, outputTotal, "reasoningTokens", source);
  return new Usage(
    {
      input_tokens: total - cached,
      cached_tokens: cached,
      output_tokens: outputTotal,
      reasoning_tokens: reasoning,
    },
    { model },
  );
}

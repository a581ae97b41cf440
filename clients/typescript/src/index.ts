/**
 * @creditgate/client: creditgate's HTTP API from TypeScript, a guard that holds credit
 * before an OpenAI or Anthropic call and charges its usage after, and middleware for the
 * Vercel AI SDK. No dependencies beyond the global `fetch`.
 */

export {
  Client,
  ENV_API_KEY,
  ENV_BASE_URL,
  RETRY_STATUSES,
  newIdempotencyKey,
  retryAfterMs,
  type Call,
  type ClientOptions,
  type FetchLike,
  type RequestOptions,
  type RetryPolicy,
} from "./client.js";
export {
  Guard,
  type GuardOptions,
  type GuardStatus,
  type Logger,
  type Price,
  type SettleOptions,
} from "./guard.js";
export {
  creditgateMiddleware,
  estimatePromptTokens,
  type CreditgateMiddleware,
  type CreditgateMiddlewareOptions,
} from "./ai.js";
export {
  ImpossibleUsage,
  PRICED_TOKENS,
  TOKEN_FIELDS,
  Usage,
  UsageMeter,
  UsageNotFound,
  aiSdkUsage,
  anthropicUsage,
  openaiChatUsage,
  openaiResponsesUsage,
  usageFrom,
  usageOf,
  type TokenField,
  type UsageCounts,
} from "./usage.js";
export * from "./errors.js";
export { JsonSyntaxError, UnsafeNumberError, parseJson, stringifyJson, type Json } from "./json.js";
export type * from "./types.js";
export { VERSION } from "./version.js";

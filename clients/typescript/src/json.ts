/**
 * JSON without lost digits.
 *
 * creditgate sends amounts as JSON integers in an asset's minor unit, and a plain JSON
 * integer keeps its whole 64-bit range. `JSON.parse` turns every number into a double, which
 * holds integers exactly only up to 2^53 - 1, so answers are read here instead: every
 * integer (a number written without a fraction or an exponent) becomes a `bigint`; any other
 * number (only metadata carries one) stays a `number`. Requests are written here too: a
 * `bigint` is written as its digits, and a `number` must be a safe integer, except inside
 * `metadata`, whose numbers the server keeps as they are.
 */

export type Json = null | boolean | number | bigint | string | Json[] | { [key: string]: Json };

export class JsonSyntaxError extends SyntaxError {
  constructor(message: string, readonly position: number) {
    super(`${message} at position ${position}`);
    this.name = "JsonSyntaxError";
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** Parse JSON text; integers become `bigint`, other numbers `number`. */
export function parseJson(text: string): Json {
  let at = 0;

  const fail = (message: string): never => {
    throw new JsonSyntaxError(message, at);
  };
  const space = (): void => {
    while (at < text.length) {
      const c = text.charCodeAt(at);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) at++;
      else break;
    }
  };
  const literal = (word: string, value: Json): Json => {
    if (text.startsWith(word, at)) {
      at += word.length;
      return value;
    }
    return fail("unexpected token");
  };
  const string = (): string => {
    // `at` is on the opening quote. JSON.parse decodes the escapes of one string exactly.
    let end = at + 1;
    for (;;) {
      const c = text.charCodeAt(end);
      if (Number.isNaN(c)) return fail("unterminated string");
      if (c === 0x22) break;
      end += c === 0x5c ? 2 : 1;
    }
    const raw = text.slice(at, end + 1);
    at = end + 1;
    try {
      return JSON.parse(raw) as string;
    } catch {
      return fail("invalid string");
    }
  };
  const number = (): number | bigint => {
    NUMBER.lastIndex = at;
    const found = NUMBER.exec(text);
    if (found === null) return fail("unexpected token");
    at = NUMBER.lastIndex;
    const [written, fraction, exponent] = found;
    return fraction === undefined && exponent === undefined ? BigInt(written) : Number(written);
  };
  const value = (depth: number): Json => {
    if (depth > 512) fail("nested too deeply");
    space();
    const c = text[at];
    if (c === "{") {
      at++;
      const object: { [key: string]: Json } = {};
      space();
      if (text[at] === "}") {
        at++;
        return object;
      }
      for (;;) {
        space();
        if (text[at] !== '"') fail("expected a key");
        const key = string();
        space();
        if (text[at] !== ":") fail("expected ':'");
        at++;
        const item = value(depth + 1);
        // a key such as "__proto__" is kept as data, never as the prototype
        Object.defineProperty(object, key, {
          value: item,
          enumerable: true,
          writable: true,
          configurable: true,
        });
        space();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "}") {
          at++;
          return object;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      at++;
      const array: Json[] = [];
      space();
      if (text[at] === "]") {
        at++;
        return array;
      }
      for (;;) {
        array.push(value(depth + 1));
        space();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "]") {
          at++;
          return array;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    return number();
  };

  const result = value(0);
  space();
  if (at !== text.length) fail("unexpected text after the value");
  return result;
}

/** A value that cannot be sent to creditgate as it is (a lossy or fractional number). */
export class UnsafeNumberError extends TypeError {
  constructor(readonly path: string, value: unknown) {
    super(
      `${path || "the value"} is ${String(value)}: amounts and counts are integers (a bigint` +
        ` beyond 2^53 - 1), and prices and costs decimal strings such as "0.25"`,
    );
    this.name = "UnsafeNumberError";
  }
}

/**
 * JSON text of a request body. `bigint` is written as its digits; a `number` must be a safe
 * integer (a fraction, NaN, Infinity or an integer past 2^53 - 1 throws `UnsafeNumberError`),
 * except under a `metadata` key, whose finite numbers are written as JSON writes them.
 * `undefined` members are left out, as `JSON.stringify` leaves them.
 */
export function stringifyJson(value: unknown): string {
  return write(value, "", false) ?? "null";
}

function write(value: unknown, path: string, free: boolean): string | undefined {
  if (value === null) return "null";
  switch (typeof value) {
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "boolean":
      return value ? "true" : "false";
    case "string":
      return JSON.stringify(value);
    case "bigint":
      return value.toString();
    case "number":
      if (Number.isSafeInteger(value)) return Object.is(value, -0) ? "0" : String(value);
      if (free && Number.isFinite(value)) return JSON.stringify(value);
      throw new UnsafeNumberError(path, value);
    default:
      break;
  }
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) {
    const items = value.map((item, i) => write(item, `${path}[${i}]`, free) ?? "null");
    return `[${items.join(",")}]`;
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return write(toJSON.call(value), path, free);
  const members: string[] = [];
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const where = path ? `${path}.${key}` : key;
    const text = write(item, where, free || key === "metadata");
    if (text !== undefined) members.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${members.join(",")}}`;
}

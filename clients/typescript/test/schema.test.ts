/** The committed types (src/schema.ts) are what the live server's /openapi.json generates;
 * when the API changes, `npm run generate` writes them again. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { SCHEMA_FILE, fetchOpenApi, generateSchema } from "../tools/schema.js";
import { live } from "./support/context.js";
import { packageRoot } from "./support/live.js";

test("src/schema.ts matches the server's /openapi.json", async () => {
  const ctx = await live();
  const generated = await generateSchema(await fetchOpenApi(ctx.baseUrl));
  const committed = readFileSync(join(packageRoot(), SCHEMA_FILE), "utf8");
  assert.ok(
    generated === committed,
    `${SCHEMA_FILE} no longer matches ${ctx.baseUrl}/openapi.json: run \`npm run generate\`` +
      " in clients/typescript and commit the result",
  );
});

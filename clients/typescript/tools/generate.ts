/** `npm run generate`: regenerate src/schema.ts from a live `creditgate serve`. */

import { writeFileSync } from "node:fs";
import { join } from "node:path";

import { packageRoot, startServer } from "../test/support/live.js";
import { SCHEMA_FILE, fetchOpenApi, generateSchema } from "./schema.js";

const server = await startServer({ tenant: false });
try {
  const schema = await generateSchema(await fetchOpenApi(server.baseUrl));
  const path = join(packageRoot(), SCHEMA_FILE);
  writeFileSync(path, schema);
  console.log(`wrote ${SCHEMA_FILE} from ${server.baseUrl}/openapi.json`);
} finally {
  await server.stop();
}

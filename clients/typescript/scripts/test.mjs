// `npm test`: compile the package and its tests, type-check the examples, start one live
// `creditgate serve` (SQLite, a free port) for every test file, and run them with the node
// test runner. Extra arguments are passed to `node --test` (e.g. a file under build/test).
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

function run(command, args, env = process.env) {
  const out = spawnSync(command, args, { cwd: root, stdio: "inherit", env });
  if (out.status !== 0) process.exit(out.status ?? 1);
}

rmSync(join(root, "build"), { recursive: true, force: true });
run(process.execPath, [tsc, "-p", "tsconfig.json"]);
run(process.execPath, [tsc, "-p", "tsconfig.test.json"]);
run(process.execPath, [tsc, "-p", "examples/tsconfig.json"]);

const { startServer } = await import(join(root, "build/test/support/live.js"));
const { prepare } = await import(join(root, "build/test/support/context.js"));
const server = await startServer();
let status = 1;
try {
  await prepare(server.baseUrl, server.apiKey);
  const files = process.argv.slice(2);
  const out = spawnSync(
    process.execPath,
    ["--test", ...(files.length ? files : ["build/test/"])],
    {
      cwd: root,
      stdio: "inherit",
      env: {
        ...process.env,
        CREDITGATE_TEST_BASE_URL: server.baseUrl,
        CREDITGATE_TEST_API_KEY: server.apiKey,
      },
    },
  );
  status = out.status ?? 1;
} finally {
  await server.stop();
}
process.exit(status);

// `npm test`: compile the package and its tests, type-check the examples, start one live
// `creditgate serve` (SQLite, a free port) for every test file, and run them with the node
// test runner. Extra arguments are passed to `node --test` (e.g. a file under build/test).
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

function run(args, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: "inherit", env });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

rmSync(join(root, "build"), { recursive: true, force: true });
// The tests (and the server they share) first; the package and the examples meanwhile.
let status = await run([tsc, "-p", "tsconfig.test.json"]);
if (status !== 0) process.exit(status);

const { startServer } = await import(join(root, "build/test/support/live.js"));
const { prepare } = await import(join(root, "build/test/support/prepare.js"));
const starting = startServer().then(async (server) => {
  await prepare(server.baseUrl, server.apiKey);
  return server;
});
starting.catch(() => undefined); // its failure is thrown where it is awaited, below
const compiled = await Promise.all([
  run([tsc, "-p", "tsconfig.json"]),
  run([tsc, "-p", "examples/tsconfig.json"]),
]);
const server = await starting;
try {
  status = compiled.find((code) => code !== 0) ?? 0;
  if (status === 0) {
    const files = process.argv.slice(2);
    status = await run(["--test", ...(files.length ? files : ["build/test/"])], {
      ...process.env,
      CREDITGATE_TEST_BASE_URL: server.baseUrl,
      CREDITGATE_TEST_API_KEY: server.apiKey,
    });
  }
} finally {
  await server.stop();
}
process.exit(status);

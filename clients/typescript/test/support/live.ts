/**
 * A live `creditgate serve` for the tests and for `npm run generate`: the repository's Python
 * server on a fresh SQLite database in a temporary folder, on a free port.
 *
 * The Python that runs it is $CREDITGATE_PYTHON, else the repository's `.venv`, else
 * `python3` (the one `scripts/test` installs creditgate into).
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, openSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// Generous: a loaded machine may take a minute or more to import and migrate.
const STARTUP_MS = 180_000;

/** The folder of the package (clients/typescript), wherever this file was compiled to. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const name = (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name;
      if (name === "@creditgate/client") return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("no @creditgate/client package.json above " + import.meta.url);
    dir = up;
  }
}

export function repoRoot(): string {
  return resolve(packageRoot(), "..", "..");
}

export function python(): string {
  if (process.env.CREDITGATE_PYTHON) return process.env.CREDITGATE_PYTHON;
  const venv = join(repoRoot(), ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

function creditgate(args: string[]): { stdout: string; stderr: string; status: number | null } {
  const out = spawnSync(python(), ["-m", "creditgate", ...args], {
    encoding: "utf8",
    timeout: 300_000,
  });
  if (out.error) throw out.error;
  return { stdout: out.stdout, stderr: out.stderr, status: out.status };
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? ok(address.port) : fail(new Error("no port")),
      );
    });
  });
}

export interface LiveServer {
  baseUrl: string;
  /** A tenant's API key (created with `creditgate tenants create`), when one was asked for. */
  apiKey: string;
  folder: string;
  stop(): Promise<void>;
}

/** Start `creditgate serve` on a new SQLite database; with `tenant`, make a tenant first. */
export async function startServer(options: { tenant?: boolean } = {}): Promise<LiveServer> {
  const folder = mkdtempSync(join(tmpdir(), "creditgate-ts-"));
  const db = `sqlite:///${join(folder, "live.db")}`;
  let apiKey = "";
  if (options.tenant ?? true) {
    const made = creditgate(["tenants", "create", "TypeScript client tests", "--db", db, "--json"]);
    if (made.status !== 0) {
      throw new Error(`creditgate tenants create failed:\n${made.stdout}\n${made.stderr}`);
    }
    apiKey = (JSON.parse(made.stdout) as { api_key: { key: string } }).api_key.key;
  }
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(folder, "serve.log");
  const log = openSync(logPath, "w");
  const child: ChildProcess = spawn(
    python(),
    ["-m", "creditgate", "serve", "--db", db, "--port", String(port), "--log-level", "warning"],
    { stdio: ["ignore", log, log] },
  );
  closeSync(log);
  let exited: number | null | undefined;
  child.on("exit", (code) => {
    exited = code;
  });
  const stop = async (): Promise<void> => {
    if (exited === undefined) {
      const gone = new Promise<void>((ok) => child.once("exit", () => ok()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(folder, { recursive: true, force: true });
  };
  const deadline = Date.now() + STARTUP_MS;
  for (;;) {
    if (exited !== undefined) {
      const text = readFileSync(logPath, "utf8");
      rmSync(folder, { recursive: true, force: true });
      throw new Error(`creditgate serve exited with ${exited}:\n${text}`);
    }
    try {
      const answer = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (answer.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      const text = readFileSync(logPath, "utf8");
      await stop();
      throw new Error(`creditgate serve did not get healthy:\n${text}`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return { baseUrl, apiKey, folder, stop };
}

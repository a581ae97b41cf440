/** What `npm pack` ships: the compiled client, its types, README and LICENSE, nothing else;
 * and the runtime code uses nothing of Node's, so it runs on Deno and edge runtimes too. */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { packageRoot } from "./support/live.js";

const root = packageRoot();

test("npm pack lists only what the client needs", () => {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const [report] = JSON.parse(out) as { name: string; files: { path: string }[] }[];
  assert.equal(report?.name, "@creditgate/client");
  const files = report!.files.map((f) => f.path).sort();
  for (const path of files) {
    assert.ok(
      ["package.json", "README.md", "LICENSE"].includes(path) || /^dist\/[a-z-]+\.(js|d\.ts)$/.test(path),
      `npm pack would ship ${path}`,
    );
  }
  for (const needed of ["dist/index.js", "dist/index.d.ts", "dist/schema.d.ts", "README.md", "LICENSE"]) {
    assert.ok(files.includes(needed), `npm pack misses ${needed}`);
  }
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Record<string, unknown>;
  assert.equal(manifest.dependencies, undefined, "no runtime dependencies");
  assert.equal(manifest.type, "module");
});

test("the runtime code imports nothing and uses no Node-only globals", () => {
  const dist = join(root, "dist");
  for (const name of readdirSync(dist).filter((n) => n.endsWith(".js"))) {
    const code = readFileSync(join(dist, name), "utf8");
    for (const match of code.matchAll(/\bfrom\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']/g)) {
      const target = match[1] ?? match[2] ?? "";
      assert.ok(target.startsWith("./"), `${name} imports ${target}`);
    }
    assert.doesNotMatch(code, /\brequire\(|\bBuffer\b|\b__dirname\b|node:/, name);
    // `process` only as an optional global, for its env
    for (const line of code.split("\n").filter((l) => /\bprocess\b/.test(l))) {
      assert.match(line, /process\?|process\?:|g\.process/, `${name}: ${line.trim()}`);
    }
  }
});

// tsc -b never deletes what a moved or deleted source left in dist/: a stale test file would still
// run and a stale module could still be imported. Delete every output whose source is gone.
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

let removed = 0;
for (const pkg of readdirSync("packages")) {
  const dist = join("packages", pkg, "dist");
  if (!existsSync(dist)) continue;
  // Sources live under the package's rootDir (its outputs mirror that tree in dist/).
  const rootDir = /"rootDir"\s*:\s*"([^"]*)"/.exec(readFileSync(join("packages", pkg, "tsconfig.json"), "utf8"))?.[1] ?? ".";
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        walk(path);
        if (readdirSync(path).length === 0) rmSync(path, { recursive: true });
        continue;
      }
      const m = /^(.*?)(\.d\.ts\.map|\.d\.ts|\.js\.map|\.js)$/.exec(path.slice(dist.length + 1));
      if (!m) continue;
      if (!existsSync(join("packages", pkg, rootDir, m[1] + ".ts"))) {
        rmSync(path);
        removed++;
      }
    }
  };
  walk(dist);
}
if (removed) console.error(`pruned ${removed} stale build outputs`);

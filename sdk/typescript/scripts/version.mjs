// Sets package.json's version to openapi.yaml's info.version, so that the
// SDK's version follows the API's (run by `npm run generate`; a Go test
// fails when they differ).
import { readFileSync, writeFileSync } from "node:fs";

const spec = readFileSync(new URL("../../../openapi.yaml", import.meta.url), "utf8");
const m = /^info:\n(?:[ ]+.*\n)*?[ ]{2}version:[ ]*['"]?([^'"\s]+)/m.exec(spec);
if (!m) {
  throw new Error("openapi.yaml: no info.version");
}
const version = m[1];
for (const file of ["../package.json", "../package-lock.json"]) {
  const path = new URL(file, import.meta.url);
  const pkg = JSON.parse(readFileSync(path, "utf8"));
  const root = pkg.packages?.[""];
  if (pkg.version !== version || (root && root.version !== version)) {
    pkg.version = version;
    if (root) {
      root.version = version;
    }
    writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
  }
}

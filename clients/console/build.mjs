// Builds the console into dist/: one script, one style sheet, the page. Herald embeds these
// files (src/routes/console.rs); CI checks they are what this source builds to.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning" };
mkdirSync("dist", { recursive: true });
await build({ ...common, entryPoints: ["src/main.js"], format: "esm", target: "es2020", outfile: "dist/console.js" });
await build({ ...common, entryPoints: ["src/style.css"], outfile: "dist/console.css" });
copyFileSync("src/index.html", "dist/index.html");

let total = 0;
for (const file of ["index.html", "console.js", "console.css"]) {
  const bytes = readFileSync(`dist/${file}`);
  const gzipped = gzipSync(bytes, { level: 9 }).length;
  total += gzipped;
  console.log(`dist/${file}: ${bytes.length} bytes, ${gzipped} gzipped`);
}
console.log(`total: ${total} bytes gzipped`);

// Prints the built module's size, minified and gzipped (what a browser downloads).
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const built = readFileSync(new URL("dist/herald.js", import.meta.url));
console.log(`dist/herald.js: ${built.length} bytes, ${gzipSync(built, { level: 9 }).length} gzipped`);

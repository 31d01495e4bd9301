// Drives headless Chromium for tests/api/browser.rs. One JSON command per line on stdin,
// one JSON answer per line on stdout:
//   {"op":"open","context":"c1","page":"p1","url":"…"}   open a page (contexts are separate
//                                                         browsers: cookie jars of their own)
//   {"op":"eval","page":"p1","js":"…"}                   the value of an expression
//   {"op":"wait","page":"p1","js":"…","timeout":5000}    until the expression is truthy
//   {"op":"close","page":"p1"}                           close a page (its tab goes away)
//   {"op":"run","page":"p1","js":"await page…"}          Playwright code with `page` (the
//                                                         console tests click, type, resize
//                                                         and take screenshots so)
//   {"op":"axe","page":"p1"}                             axe-core's serious and critical
//                                                         violations of the page as it is
//   {"op":"quit"}
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

// axe-core is run through the DevTools protocol, which no Content-Security-Policy stops.
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const AsyncFunction = (async () => {}).constructor;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const contexts = new Map();
const pages = new Map();
const answer = (value) => process.stdout.write(JSON.stringify(value) + "\n");

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    if (command.op === "open") {
      if (!contexts.has(command.context)) contexts.set(command.context, await browser.newContext());
      const page = await contexts.get(command.context).newPage();
      page.on("console", (message) => process.stderr.write(`[${command.page}] ${message.text()}\n`));
      await page.goto(command.url);
      pages.set(command.page, page);
      answer({ ok: true });
    } else if (command.op === "eval") {
      answer({ ok: true, value: await pages.get(command.page).evaluate(command.js) });
    } else if (command.op === "wait") {
      await pages.get(command.page).waitForFunction(command.js, null, { timeout: command.timeout ?? 10000 });
      answer({ ok: true });
    } else if (command.op === "run") {
      const value = await new AsyncFunction("page", command.js)(pages.get(command.page));
      answer({ ok: true, value: value ?? null });
    } else if (command.op === "axe") {
      const page = pages.get(command.page);
      await page.evaluate(`${axeSource}\n;0`);
      const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
      const violations = result.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) }));
      answer({ ok: true, value: violations });
    } else if (command.op === "close") {
      await pages.get(command.page).close();
      pages.delete(command.page);
      answer({ ok: true });
    } else if (command.op === "quit") {
      answer({ ok: true });
      break;
    } else {
      answer({ ok: false, error: `unknown op ${command.op}` });
    }
  } catch (error) {
    answer({ ok: false, error: String(error) });
  }
}
await browser.close();
// stdin stays open on the test's side; without this the process would wait for it.
process.exit(0);

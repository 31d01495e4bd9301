// Drives headless Chromium for tests/api/browser.rs. One JSON command per line on stdin,
// one JSON answer per line on stdout:
//   {"op":"open","context":"c1","page":"p1","url":"…"}   open a page (contexts are separate
//                                                         browsers: cookie jars of their own)
//   {"op":"eval","page":"p1","js":"…"}                   the value of an expression
//   {"op":"wait","page":"p1","js":"…","timeout":5000}    until the expression is truthy
//   {"op":"close","page":"p1"}                           close a page (its tab goes away)
//   {"op":"quit"}
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

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

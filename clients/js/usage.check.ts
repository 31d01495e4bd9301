// Compiled by `npm run check` (tsc, no output): the declarations describe the contract's example.
import { connect, HeraldError, type State } from "./herald.js";

const herald = connect({
  url: "https://herald.example.com",
  tenant: "acme",
  token: () => fetch("/api/herald-token").then((r) => r.text()),
  topics: ["stock:AAPL"],
});
herald.on("mail", (data: { subject: string }, event) => console.log(data.subject, event.id));
herald.on("reset", ({ reason }) => console.log(reason));
herald.on("inbox", ({ unread }) => console.log(unread + 1));
herald.on("state", (s: State) => console.log(s));
const stop = herald.on("error", (error) => console.log(error.message));
stop();

async function inbox(): Promise<number> {
  const page = await herald.inbox.list({ unread: true, limit: 20 });
  const { unread } = await herald.inbox.read(page.items.map((item) => item.id));
  await herald.inbox.readAll();
  await herald.inbox.unread([]);
  return unread;
}
inbox().catch((error) => error instanceof HeraldError && console.log(error.status, error.code));
// Seen only where the app says so: a notification the user opened.
const quiet = connect({ url: "https://herald.example.com", tenant: "acme", token: "t", autoSeen: false });
quiet.on("mail", (_data, event) => quiet.seen([event.id]));
herald.close();

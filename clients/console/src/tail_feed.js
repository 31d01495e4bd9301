// The live tail of the tenant in view, kept while the console is open: it starts when a
// view first needs it (the tail, or the send form whose answer it shows) and keeps the
// last 500 frames, so moving between views loses nothing.
import { readTail } from "./api.js";

const KEEP = 500;

export function createFeed(tenant) {
  const listeners = new Set();
  const feed = {
    tenant,
    frames: [],
    dropped: 0,
    status: "connecting",
    error: null,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      controller.abort();
    },
  };
  const changed = () => {
    for (const listener of listeners) listener();
  };
  const controller = new AbortController();
  let serial = 0;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        feed.status = "connecting";
        changed();
        const onFrame = (frame) => {
          if (frame.event === "dropped") {
            feed.dropped += frame.data.count;
          } else {
            const entry = { key: ++serial, kind: frame.event, body: frame.data };
            feed.frames = [entry, ...feed.frames].slice(0, KEEP);
          }
          changed();
        };
        const onOpen = () => {
          feed.status = "open";
          feed.error = null;
          changed();
        };
        await readTail(tenant, controller.signal, onFrame, onOpen);
        feed.status = "ended";
      } catch (error) {
        if (controller.signal.aborted) return;
        feed.status = "failed";
        feed.error = error;
        changed();
        // Refused for good (a revoked key, a tenant gone): stop; else try again shortly.
        if (error.status && error.status < 500 && error.status !== 429) return;
      }
      changed();
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  };
  run();
  return feed;
}
